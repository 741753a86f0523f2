package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

const (
	sessionCookie = "agentetl_session"
	loginCookie   = "agentetl_login"
	// maxSessions bounds memory: the oldest sessions are dropped beyond it.
	maxSessions = 10000
)

// session is a logged-in browser. It lives in memory only: an orchestrator
// restart logs everyone out, which is the safe default.
type session struct {
	id      string
	key     [32]byte
	csrf    string
	user    string
	created time.Time
	expires time.Time
	flash   []flash
	// reviewer remembers the name last typed on a review form.
	reviewer string
}

type flash struct {
	Kind string // ok, error, info
	Msg  string
}

type sessions struct {
	ttl time.Duration
	mu  sync.Mutex
	// m is keyed by the SHA-256 of the cookie value, so the map never
	// holds a usable credential and lookups do not depend on its bytes.
	m map[[32]byte]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("webui: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(user string) *session {
	now := time.Now()
	s := &session{id: randomToken(), csrf: randomToken(), user: user, created: now, expires: now.Add(ss.ttl)}
	s.key = sha256.Sum256([]byte(s.id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.evictLocked(now)
	}
	ss.m[s.key] = s
	return s
}

// evictLocked drops expired sessions and, if still full, the oldest one.
func (ss *sessions) evictLocked(now time.Time) {
	var oldest *session
	for k, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, k)
			continue
		}
		if oldest == nil || s.created.Before(oldest.created) {
			oldest = s
		}
	}
	if len(ss.m) >= maxSessions && oldest != nil {
		delete(ss.m, oldest.key)
	}
}

// get returns the request's live session and extends it (sliding expiry).
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil
	}
	key := sha256.Sum256([]byte(c.Value))
	now := time.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil
	}
	if now.After(s.expires) {
		delete(ss.m, key)
		return nil
	}
	s.expires = now.Add(ss.ttl)
	return s
}

func (ss *sessions) remove(s *session) {
	if s == nil {
		return
	}
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
}

func (ss *sessions) addFlash(s *session, kind, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(s.flash) < 5 {
		s.flash = append(s.flash, flash{Kind: kind, Msg: msg})
	}
}

func (ss *sessions) takeFlash(s *session) []flash {
	if s == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

func (ss *sessions) setReviewer(s *session, name string) {
	ss.mu.Lock()
	s.reviewer = name
	ss.mu.Unlock()
}

func (ss *sessions) reviewer(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return s.reviewer
}
