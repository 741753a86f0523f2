// Package webui is the orchestrator's web interface: server-rendered pages
// (html/template, so every value is escaped for its context) for the
// overview, pipelines, catalog, mapping review, errors and dead letters,
// and the decision log, served from the orchestrator binary at / and /ui/.
// Static assets (one stylesheet, one small script for live updates and
// live lint) are embedded; charts are inline SVG drawn on the server. Every
// page works without JavaScript; the script only adds polling and
// as-you-type lint.
//
// Security: a login with the orchestrator's API token opens a server-side
// session (cookie HttpOnly, SameSite=Strict, Secure over TLS); every
// state-changing request needs that session and its CSRF token (form field
// or X-CSRF-Token header, compared in constant time). With Insecure
// (--insecure-dev) a session is opened without login, and the CSRF check
// still applies. Every response carries a Content-Security-Policy without
// inline scripts, nosniff, frame-ancestors 'none' and a strict referrer
// policy. Free text that may quote connection strings (errors, decisions,
// payloads) goes through internal/redact before it is rendered.
package webui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/orchestrator/autoloop"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ReviewService is the review queue of the automatic loop; *autoloop.Loop
// implements it (the same methods as httpapi.ReviewService).
type ReviewService interface {
	Reviews(ctx context.Context, status string) ([]autoloop.Review, error)
	Approve(ctx context.Context, id, reviewer, comment string) (autoloop.Review, error)
	Reject(ctx context.Context, id, reviewer, comment string) (autoloop.Review, error)
	Edit(ctx context.Context, id, reviewer, comment string, edits []autoloop.FieldEdit) (autoloop.Review, error)
}

// Replayer re-sends a pipeline's dead letters of one fingerprint;
// *orchestrator.Manager implements it.
type Replayer interface {
	ReplayDeadLetters(ctx context.Context, pipelineID, fingerprint string, limit int) (int, error)
}

// Config wires the UI to the orchestrator's parts.
type Config struct {
	Manager     *orchestrator.Manager
	Coordinator *orch.Coordinator
	Store       metastore.Store
	// Reviews is nil when the automatic loop is off.
	Reviews ReviewService
	// Replayer defaults to Manager when it implements Replayer.
	Replayer Replayer
	// Token is the orchestrator's API token, which is also the login.
	Token    string
	Insecure bool
	Logger   *slog.Logger
	// SessionTTL is how long an idle session lasts (default 8h).
	SessionTTL time.Duration
	// ReplayLimit bounds the records one replay sends (default 100000).
	ReplayLimit int
}

// UI is the web interface handler.
type UI struct {
	c        Config
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	static   http.Handler
	tokenSum [32]byte
}

// New builds the UI. Like the API it refuses to run without a token unless
// Insecure is set.
func New(c Config) (*UI, error) {
	if c.Token == "" && !c.Insecure {
		return nil, errors.New("webui: a token is required (or insecure dev mode)")
	}
	if c.Manager == nil || c.Store == nil {
		return nil, errors.New("webui: manager and store are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 8 * time.Hour
	}
	if c.ReplayLimit <= 0 {
		c.ReplayLimit = 100000
	}
	if c.Replayer == nil {
		if r, ok := any(c.Manager).(Replayer); ok {
			c.Replayer = r
		}
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("webui: static assets: %w", err)
	}
	u := &UI{c: c, log: c.Logger.With("component", "webui"), pages: pages,
		sessions: newSessions(c.SessionTTL), static: http.StripPrefix("/ui/static/", http.FileServerFS(sub)),
		tokenSum: sha256.Sum256([]byte(c.Token))}
	u.routes()
	return u, nil
}

// Mount serves the API's paths (/api/, /healthz, /readyz, /metrics) with
// api and everything else with ui.
func Mount(api, ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/api/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, api)
	}
	mux.Handle("/", ui)
	return mux
}

func (u *UI) routes() {
	m := http.NewServeMux()
	u.mux = m
	page := func(pattern string, h handlerFunc) { m.Handle(pattern, u.wrap(h, true)) }
	open := func(pattern string, h handlerFunc) { m.Handle(pattern, u.wrap(h, false)) }

	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	m.Handle("GET /ui/static/", u.staticHandler())
	open("GET /ui/login", u.loginPage)
	open("POST /ui/login", u.login)
	page("POST /ui/logout", u.logout)

	page("GET /ui/{$}", u.overview)
	page("GET /ui/live/overview", u.overviewLive)

	page("GET /ui/pipelines", u.pipelines)
	page("GET /ui/new-pipeline", u.newPipeline)
	page("POST /ui/new-pipeline", u.saveNewPipeline)
	page("GET /ui/pipelines/{id}", u.pipeline)
	page("GET /ui/pipelines/{id}/edit", u.editPipeline)
	page("POST /ui/pipelines/{id}/edit", u.savePipeline)
	page("POST /ui/pipelines/{id}/run", u.runPipeline)
	page("POST /ui/pipelines/{id}/pause", u.pausePipeline)
	page("POST /ui/pipelines/{id}/resume", u.resumePipeline)
	page("POST /ui/pipelines/{id}/schedule", u.schedulePipeline)
	page("POST /ui/lint", u.lint)
	page("GET /ui/executions/{id}", u.execution)
	page("GET /ui/executions/{id}/live", u.executionLive)
	page("POST /ui/executions/{id}/cancel", u.cancelExecution)

	page("GET /ui/catalog", u.catalog)
	page("GET /ui/catalog/entry", u.catalogEntry)

	page("GET /ui/reviews", u.reviews)
	page("GET /ui/reviews/{id}", u.review)
	page("POST /ui/reviews/{id}", u.decideReview)

	page("GET /ui/errors", u.errorsPage)
	page("GET /ui/errors/fingerprint", u.fingerprint)
	page("POST /ui/errors/replay", u.replay)

	page("GET /ui/decisions", u.decisions)

	page("/ui/", func(w http.ResponseWriter, r *http.Request, s *session) error {
		return httpErr(http.StatusNotFound, "There is no page at %s.", r.URL.Path)
	})
	m.Handle("/", u.wrap(func(w http.ResponseWriter, r *http.Request, s *session) error {
		return httpErr(http.StatusNotFound, "There is no page at %s.", r.URL.Path)
	}, false))
}

// ServeHTTP sets the security headers of every response, then routes.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	u.mux.ServeHTTP(w, r)
}

func (u *UI) staticHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The assets are embedded in the binary: they change only with it.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		u.static.ServeHTTP(w, r)
	})
}

// handlerFunc handles one request with its session (nil only for open
// pages without one). A returned error is rendered as an error page.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// maxForm bounds request bodies: the largest is an edited config.
const maxForm = 1 << 20

// wrap resolves the session, enforces login and CSRF, renders errors and
// adds Server-Timing (the time the server spent on the request).
func (u *UI) wrap(h handlerFunc, needLogin bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		s := u.sessions.get(r)
		if s == nil && u.c.Insecure {
			s = u.sessions.create("insecure-dev")
			u.setSessionCookie(w, r, s)
		}
		if needLogin && s == nil {
			if r.Method == http.MethodGet && !isFragment(r) {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			u.renderError(w, r, nil, httpErr(http.StatusUnauthorized, "Your session has ended. Log in again."))
			return
		}
		if !safeMethod(r.Method) && r.URL.Path != "/ui/login" {
			if err := u.checkCSRF(r, s); err != nil {
				u.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "reason", err.Error())
				u.renderError(w, r, s, err)
				return
			}
		}
		bw := &bufferedWriter{header: w.Header(), code: http.StatusOK}
		err := h(bw, r, s)
		if err != nil {
			bw.reset()
			u.renderError(bw, r, s, err)
		}
		bw.header.Set("Server-Timing", fmt.Sprintf("app;dur=%.2f", float64(time.Since(start).Microseconds())/1000))
		bw.flush(w)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func isFragment(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/ui/live/") || (strings.HasPrefix(p, "/ui/executions/") && strings.HasSuffix(p, "/live")) || p == "/ui/lint"
}

// checkCSRF requires the session's token in the csrf form field or the
// X-CSRF-Token header, and refuses requests another site started.
func (u *UI) checkCSRF(r *http.Request, s *session) error {
	if s == nil {
		return httpErr(http.StatusForbidden, "This action needs a session: log in and try again.")
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return httpErr(http.StatusForbidden, "Cross-site request refused.")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		ou, err := url.Parse(o)
		if err != nil || ou.Host != r.Host {
			return httpErr(http.StatusForbidden, "Cross-origin request refused.")
		}
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return httpErr(http.StatusForbidden, "The form's security token is missing or out of date. Reload the page and try again.")
	}
	return nil
}

// bufferedWriter holds the response until the handler is done, so that a
// failure half-way renders a clean error page and Server-Timing can be
// set after rendering.
type bufferedWriter struct {
	header http.Header
	code   int
	buf    bytes.Buffer
	wrote  bool
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) { b.wrote = true; return b.buf.Write(p) }
func (b *bufferedWriter) WriteHeader(code int)        { b.code = code }
func (b *bufferedWriter) reset() {
	b.buf.Reset()
	b.code = http.StatusOK
	b.header.Del("Location")
}

func (b *bufferedWriter) flush(w http.ResponseWriter) {
	if b.buf.Len() > 0 && b.header.Get("Content-Type") == "" {
		b.header.Set("Content-Type", "text/html; charset=utf-8")
	}
	b.header.Set("Content-Length", strconv.Itoa(b.buf.Len()))
	w.WriteHeader(b.code)
	_, _ = w.Write(b.buf.Bytes())
}

// ---- errors ----

type uiError struct {
	status int
	msg    string
}

func (e *uiError) Error() string { return e.msg }

func httpErr(status int, format string, args ...any) *uiError {
	return &uiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// userMessage turns a domain error into a status and a message fit for
// the page; messages are redacted.
func userMessage(err error) (int, string) {
	var ue *uiError
	var ve *orchestrator.ValidationError
	var lf *orchestrator.LintFailure
	var vc *orchestrator.VersionConflict
	switch {
	case errors.As(err, &ue):
		return ue.status, ue.msg
	case errors.As(err, &ve), errors.As(err, &lf):
		return http.StatusBadRequest, err.Error()
	case errors.As(err, &vc):
		return http.StatusConflict, vc.Error()
	case errors.Is(err, orchestrator.ErrNotFound), errors.Is(err, metastore.ErrNotFound), errors.Is(err, autoloop.ErrReviewNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, orchestrator.ErrOverlap), errors.Is(err, orchestrator.ErrPaused), errors.Is(err, orchestrator.ErrNotBatch),
		errors.Is(err, orchestrator.ErrNotRunning), errors.Is(err, orchestrator.ErrExists),
		errors.Is(err, autoloop.ErrReviewClosed), errors.Is(err, autoloop.ErrReviewStale):
		return http.StatusConflict, err.Error()
	case errors.Is(err, orchestrator.ErrNoDeadLetter):
		return http.StatusConflict, err.Error()
	case errors.Is(err, autoloop.ErrInvalidEdit):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "The request did not complete in time: " + err.Error()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("The form is larger than %d KiB.", maxForm>>10)
	}
	return http.StatusInternalServerError, "Internal error: " + err.Error()
}

func (u *UI) renderError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status, msg := userMessage(err)
	msg = clean(msg)
	if status >= 500 {
		u.log.Error("page failed", "method", r.Method, "path", r.URL.Path, "err", msg)
	}
	if isFragment(r) || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "{\"error\":%s}\n", strconv.Quote(msg))
		return
	}
	w.WriteHeader(status)
	title := http.StatusText(status)
	if rerr := u.render(w, r, s, "error", title, "", map[string]any{"Status": status, "StatusText": title, "Message": msg}); rerr != nil {
		u.log.Error("error page failed", "err", rerr)
	}
}

// ---- flash messages and redirects ----

// redirect sends the browser on with a one-shot message for the next page.
func (u *UI) redirect(w http.ResponseWriter, r *http.Request, s *session, to, kind, msg string) error {
	if s != nil && msg != "" {
		u.sessions.addFlash(s, kind, clean(msg))
	}
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// failBack redirects back to a page with the error as its message, for
// actions whose failure is best explained where they were started.
func (u *UI) failBack(w http.ResponseWriter, r *http.Request, s *session, to string, err error) error {
	status, msg := userMessage(err)
	if status >= 500 {
		return err
	}
	return u.redirect(w, r, s, to, "error", msg)
}

// ---- login ----

func (u *UI) setSessionCookie(w http.ResponseWriter, r *http.Request, s *session) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(u.c.SessionTTL.Seconds())})
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	return u.renderLogin(w, r, r.URL.Query().Get("next"), "", http.StatusOK)
}

func (u *UI) renderLogin(w http.ResponseWriter, r *http.Request, next, msg string, status int) error {
	// Login CSRF: a pre-session token in a cookie and the form (double
	// submit), so another site cannot log a browser into this one.
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/ui/login", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 3600})
	w.WriteHeader(status)
	return u.render(w, r, nil, "login", "Log in", "", map[string]any{
		"LoginCSRF": tok, "Next": safeNext(next), "Message": msg})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request, _ *session) error {
	if err := r.ParseForm(); err != nil {
		return httpErr(http.StatusBadRequest, "The form could not be read.")
	}
	c, err := r.Cookie(loginCookie)
	form := r.PostFormValue("login_csrf")
	if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		return u.renderLogin(w, r, r.PostFormValue("next"), "The login form expired. Try again.", http.StatusForbidden)
	}
	if u.c.Insecure {
		s := u.sessions.create("insecure-dev")
		u.setSessionCookie(w, r, s)
		return u.redirect(w, r, s, safeNext(r.PostFormValue("next")), "", "")
	}
	got := sha256.Sum256([]byte(r.PostFormValue("token")))
	if subtle.ConstantTimeCompare(got[:], u.tokenSum[:]) != 1 {
		u.log.Warn("failed UI login", "remote", r.RemoteAddr)
		// A short pause makes guessing slower without holding a lock.
		time.Sleep(300 * time.Millisecond)
		return u.renderLogin(w, r, r.PostFormValue("next"), "That token is not the orchestrator's token.", http.StatusUnauthorized)
	}
	s := u.sessions.create("token")
	u.setSessionCookie(w, r, s)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/ui/login", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return u.redirect(w, r, s, safeNext(r.PostFormValue("next")), "ok", "Logged in.")
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	u.sessions.remove(s)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.Header().Set("Location", "/ui/login")
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
