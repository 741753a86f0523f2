package webui_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	orch "github.com/agentetl/agentetl/agents/orchestrator"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
	"github.com/agentetl/agentetl/internal/orchestrator"
	"github.com/agentetl/agentetl/internal/webui"
)

const token = "unit-test-token-7f3a"

// env is a UI over a real SQLite metadata store and a real Manager with no
// engine process (batch pipelines need none until they run).
type env struct {
	srv   *httptest.Server
	store metastore.Store
	mgr   *orchestrator.Manager
}

func newEnv(t *testing.T, insecure, useTLS bool) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store, err := metastore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "meta.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	coord, err := orch.New(orch.Options{Store: store, Logger: log})
	require.NoError(t, err)
	require.NoError(t, coord.Load(ctx))
	mgr, err := orchestrator.NewManager(orchestrator.Options{Store: store, Logger: log, Decisions: coord,
		Engine: func() orchestrator.Engine { return nil }})
	require.NoError(t, err)
	require.NoError(t, mgr.Start(ctx))
	ui, err := webui.New(webui.Config{Manager: mgr, Coordinator: coord, Store: store, Token: token, Insecure: insecure, Logger: log})
	require.NoError(t, err)
	h := webui.Mount(http.NotFoundHandler(), ui)
	e := &env{store: store, mgr: mgr}
	if useTLS {
		e.srv = httptest.NewTLSServer(h)
	} else {
		e.srv = httptest.NewServer(h)
	}
	t.Cleanup(e.srv.Close)
	return e
}

// client is a browser stand-in: a cookie jar, no automatic redirects.
func (e *env) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	// A client of its own: srv.Client() is shared, and so would its jar be.
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	return &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var (
	loginCSRFRe = regexp.MustCompile(`name="login_csrf" value="([^"]+)"`)
	csrfMetaRe  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
)

// login logs c in and returns the session's CSRF token.
func (e *env) login(t *testing.T, c *http.Client) string {
	t.Helper()
	_, body := get(t, c, e.srv.URL+"/ui/login")
	m := loginCSRFRe.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	resp, _ := post(t, c, e.srv.URL+"/ui/login", url.Values{"login_csrf": {m[1]}, "token": {token}, "next": {"/ui/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/", resp.Header.Get("Location"))
	_, body = get(t, c, e.srv.URL+"/ui/")
	mm := csrfMetaRe.FindStringSubmatch(body)
	require.NotNil(t, mm, "a logged-in page carries the CSRF token")
	return mm[1]
}

func (e *env) createPipeline(t *testing.T, id string) {
	t.Helper()
	_, err := e.mgr.Create(context.Background(), model.PipelineConfig{
		ID: id, Name: "pipeline " + id, Type: orchestrator.TypeBatch,
		Source:      model.SourceConfig{Type: "postgres", Table: "public.src", Connection: map[string]string{"dsn": "${SRC_DSN}"}},
		Destination: model.DestinationConfig{Type: "postgres", Table: "public.dst", Connection: map[string]string{"dsn": "${DST_DSN}"}},
	}, "test")
	require.NoError(t, err)
}

var pages = []string{"/ui/", "/ui/pipelines", "/ui/new-pipeline", "/ui/pipelines/p1", "/ui/pipelines/p1/edit", "/ui/catalog",
	"/ui/catalog?q=orders", "/ui/reviews", "/ui/errors", "/ui/decisions", "/ui/live/overview"}

// TestLoginSessionAndHeaders: pages need a login; a wrong token is
// refused; the session cookie is HttpOnly and SameSite=Strict; every
// response has the security headers, with no inline script allowed.
func TestLoginSessionAndHeaders(t *testing.T) {
	e := newEnv(t, false, false)
	e.createPipeline(t, "p1")
	c := e.client(t)

	resp, _ := get(t, c, e.srv.URL+"/ui/pipelines")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/login?next=%2Fui%2Fpipelines", resp.Header.Get("Location"))
	resp, _ = get(t, c, e.srv.URL+"/")
	require.Equal(t, http.StatusFound, resp.StatusCode)

	_, body := get(t, c, e.srv.URL+"/ui/login")
	lc := loginCSRFRe.FindStringSubmatch(body)[1]
	resp, body = post(t, c, e.srv.URL+"/ui/login", url.Values{"login_csrf": {lc}, "token": {"wrong"}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, "not the orchestrator&#39;s token")
	resp, _ = post(t, c, e.srv.URL+"/ui/login", url.Values{"login_csrf": {"forged"}, "token": {token}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "the login form has its own CSRF token")

	csrf := e.login(t, c)
	require.NotEmpty(t, csrf)
	u, _ := url.Parse(e.srv.URL)
	var sess *http.Cookie
	resp, body = get(t, c, e.srv.URL+"/ui/login")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a logged-in browser skips the login page")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "agentetl_session" {
			sess = ck
		}
	}
	require.NotNil(t, sess)
	// The jar does not keep attributes; read them from a fresh login.
	c2 := e.client(t)
	_, body = get(t, c2, e.srv.URL+"/ui/login")
	lc = loginCSRFRe.FindStringSubmatch(body)[1]
	resp, _ = post(t, c2, e.srv.URL+"/ui/login", url.Values{"login_csrf": {lc}, "token": {token}})
	var set string
	for _, h := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "agentetl_session=") {
			set = h
		}
	}
	require.Contains(t, set, "HttpOnly")
	require.Contains(t, set, "SameSite=Strict")
	require.NotContains(t, set, "Secure", "plain HTTP cannot carry a Secure cookie")

	for _, p := range pages {
		resp, body := get(t, c, e.srv.URL+p)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", p, body)
		csp := resp.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'", p)
		require.NotContains(t, csp, "unsafe-inline", p)
		require.Contains(t, csp, "frame-ancestors 'none'", p)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), p)
		require.NotEmpty(t, resp.Header.Get("Referrer-Policy"), p)
		require.Contains(t, resp.Header.Get("Server-Timing"), "app;dur=", p)
		require.NotContains(t, body, token, "%s shows the token", p)
		if p != "/ui/live/overview" {
			require.Regexp(t, `<title>[^<]+ · agentetl</title>`, body, p)
			require.NotRegexp(t, `<script>|<script [^>]*>[^<]`, body, "%s has an inline script", p)
		}
	}
	resp, _ = get(t, c, e.srv.URL+"/ui/static/app.js")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")

	// Logging out ends the session on the server.
	resp, _ = post(t, c, e.srv.URL+"/ui/logout", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	c.Jar.SetCookies(u, []*http.Cookie{sess})
	resp, _ = get(t, c, e.srv.URL+"/ui/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the old cookie no longer works")
}

func TestSecureCookieOverTLS(t *testing.T) {
	e := newEnv(t, false, true)
	c := e.client(t)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test server
	_, body := get(t, c, e.srv.URL+"/ui/login")
	lc := loginCSRFRe.FindStringSubmatch(body)[1]
	resp, _ := post(t, c, e.srv.URL+"/ui/login", url.Values{"login_csrf": {lc}, "token": {token}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	found := false
	for _, h := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "agentetl_session=") {
			found = true
			require.Contains(t, h, "Secure")
			require.Contains(t, h, "HttpOnly")
			require.Contains(t, h, "SameSite=Strict")
		}
	}
	require.True(t, found)
}

// TestCSRF: a state-changing request needs the session and its token;
// without either, or from another site, nothing changes.
func TestCSRF(t *testing.T) {
	e := newEnv(t, false, false)
	e.createPipeline(t, "p1")
	anon := e.client(t)
	resp, _ := post(t, anon, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no session")

	c := e.client(t)
	csrf := e.login(t, c)
	state := func() string {
		p, err := e.mgr.Get(context.Background(), "p1")
		require.NoError(t, err)
		return p.State
	}
	resp, body := post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {"not-the-token"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {csrf}}, "Origin", "https://evil.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, orchestrator.StateActive, state(), "no refused request changed anything")

	// Another session's token does not work either.
	c2 := e.client(t)
	csrf2 := e.login(t, c2)
	require.NotEqual(t, csrf, csrf2)
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {csrf2}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {csrf}}, "Origin", e.srv.URL)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, orchestrator.StatePaused, state())
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/resume", url.Values{}, "X-CSRF-Token", csrf)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the header works like the form field")
	require.Equal(t, orchestrator.StateActive, state())
	_, body = get(t, c, e.srv.URL+"/ui/pipelines/p1")
	require.Contains(t, body, "Pipeline p1 resumed.", "the result is shown once on the next page")
}

// TestInsecureDevStillChecksCSRF: with --insecure-dev no login is needed,
// but a state-changing request still needs the session's CSRF token.
func TestInsecureDevStillChecksCSRF(t *testing.T) {
	e := newEnv(t, true, false)
	e.createPipeline(t, "p1")
	c := e.client(t)
	resp, body := get(t, c, e.srv.URL+"/ui/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "Development mode")
	m := csrfMetaRe.FindStringSubmatch(body)
	require.NotNil(t, m)
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = post(t, e.client(t), e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a token without its session is refused")
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/pause", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
}

type lintAnswer struct {
	Valid  bool `json:"valid"`
	Issues []struct {
		Where   string `json:"where"`
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"issues"`
	YAML string `json:"yaml"`
}

// TestLiveLintPositions: problems are reported at the line and column of
// the edited text, whichever layer finds them.
func TestLiveLintPositions(t *testing.T) {
	e := newEnv(t, false, false)
	e.createPipeline(t, "p1")
	c := e.client(t)
	csrf := e.login(t, c)
	lint := func(text string) lintAnswer {
		t.Helper()
		resp, body := post(t, c, e.srv.URL+"/ui/lint", url.Values{"id": {"p1"}, "config": {text}}, "X-CSRF-Token", csrf)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		var a lintAnswer
		require.NoError(t, json.Unmarshal([]byte(body), &a), body)
		return a
	}
	_, page := get(t, c, e.srv.URL+"/ui/pipelines/p1/edit")
	m := regexp.MustCompile(`(?s)<textarea id="config-editor"[^>]*>(.*?)</textarea>`).FindStringSubmatch(page)
	require.NotNil(t, m)
	text := htmlUnescape(m[1])
	ok := lint(text)
	require.True(t, ok.Valid, "%+v\n%s", ok.Issues, text)
	require.Empty(t, ok.Issues, "%+v\n%s", ok.Issues, text)
	require.Contains(t, ok.YAML, "postgres:")

	lines := strings.Split(text, "\n")
	at := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return i
			}
		}
		t.Fatalf("no line starts with %q in\n%s", prefix, text)
		return 0
	}
	edit := func(i int, from, to string) string {
		cp := append([]string(nil), lines...)
		cp[i] = strings.Replace(cp[i], from, to, 1)
		return strings.Join(cp, "\n")
	}

	// A decoding error (unknown field) at the key.
	i := at("table: public.dst")
	a := lint(edit(i, "table:", "tabel:"))
	require.False(t, a.Valid)
	require.Len(t, a.Issues, 1)
	require.Equal(t, "config", a.Issues[0].Where)
	require.Equal(t, i+1, a.Issues[0].Line)
	require.Equal(t, strings.Index(lines[i], "table")+1, a.Issues[0].Column)
	require.Contains(t, a.Issues[0].Message, `did you mean "table"`)

	// A validation error at the value.
	i = at("type: batch")
	a = lint(edit(i, "batch", "batchy"))
	require.Len(t, a.Issues, 1)
	require.Equal(t, "type", a.Issues[0].Path)
	require.Equal(t, i+1, a.Issues[0].Line)
	require.Equal(t, strings.Index(lines[i], "batch")+1, a.Issues[0].Column)

	// A YAML syntax error.
	i = at("name:")
	a = lint(edit(i, "name:", "name: [unclosed"))
	require.Len(t, a.Issues, 1)
	require.Contains(t, a.Issues[0].Message, "YAML syntax error")
	require.InDelta(t, i+1, a.Issues[0].Line, 1, "the YAML parser places syntax errors within a line")

	// A Benthos lint error inside a multi-line transformation is shown at
	// the line the user typed.
	i = at("transformations:")
	bad := edit(i, "transformations: []", "transformations:\n  - type: map\n    logic: |\n      root = this\n      root.x = this.y +")
	a = lint(bad)
	require.False(t, a.Valid)
	require.NotEmpty(t, a.Issues)
	require.Equal(t, "config", a.Issues[0].Where, "%+v", a.Issues)
	require.Equal(t, i+5, a.Issues[0].Line, "%+v", a.Issues)

	// Without the CSRF token, no lint (it runs the compiler).
	resp, _ := post(t, c, e.srv.URL+"/ui/lint", url.Values{"id": {"p1"}, "config": {text}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestEditSavesAVersion: saving through the editor stores the next
// version; an invalid config stores nothing and says where the problem is.
func TestEditSavesAVersion(t *testing.T) {
	e := newEnv(t, false, false)
	e.createPipeline(t, "p1")
	c := e.client(t)
	csrf := e.login(t, c)
	_, page := get(t, c, e.srv.URL+"/ui/pipelines/p1/edit")
	text := htmlUnescape(regexp.MustCompile(`(?s)<textarea id="config-editor"[^>]*>(.*?)</textarea>`).FindStringSubmatch(page)[1])

	resp, body := post(t, c, e.srv.URL+"/ui/pipelines/p1/edit", url.Values{"csrf": {csrf}, "version": {"1"}, "op": {"save"},
		"config": {strings.Replace(text, "type: batch", "type: nope", 1)}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, "Nothing was saved")
	require.Contains(t, body, "line 3, column 7: type: must be")
	p, _ := e.mgr.Get(context.Background(), "p1")
	require.Equal(t, 1, p.Version)

	changed := strings.Replace(text, "metadata: {}", "metadata:\n  owner: data-team", 1)
	resp, body = post(t, c, e.srv.URL+"/ui/pipelines/p1/edit", url.Values{"csrf": {csrf}, "version": {"1"}, "op": {"dryrun"}, "config": {changed}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<span class="d-add">&#43;    &#34;owner&#34;: &#34;data-team&#34;,</span>`, "the dry run shows the diff")
	p, _ = e.mgr.Get(context.Background(), "p1")
	require.Equal(t, 1, p.Version, "a dry run stores nothing")

	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/edit", url.Values{"csrf": {csrf}, "version": {"1"}, "op": {"save"}, "config": {changed}, "comment": {"owner"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	p, _ = e.mgr.Get(context.Background(), "p1")
	require.Equal(t, 2, p.Version)
	require.Equal(t, "data-team", p.Config.Metadata.Owner)

	// A stale version is a conflict, not an overwrite.
	resp, body = post(t, c, e.srv.URL+"/ui/pipelines/p1/edit", url.Values{"csrf": {csrf}, "version": {"1"}, "op": {"save"},
		"config": {strings.Replace(changed, "data-team", "other-team", 1)}})
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, body, "current version is 2")

	_, body = get(t, c, e.srv.URL+"/ui/pipelines/p1?v=2")
	require.Contains(t, body, "Changes from v1 to v2")
	require.Contains(t, body, `<span class="d-add">&#43;  owner: data-team</span>`)

	// The schedule form adds a version with the cron set.
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/schedule", url.Values{"csrf": {csrf}, "cron": {"@hourly"}, "version": {"2"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	p, _ = e.mgr.Get(context.Background(), "p1")
	require.Equal(t, 3, p.Version)
	require.Equal(t, "@hourly", p.Config.Schedule.Cron)
	require.False(t, e.mgr.NextRun("p1").IsZero())
}

// TestHostileTextIsEscaped: names, descriptions, sample values and error
// payloads are data: they come out escaped, and secrets in them masked.
func TestHostileTextIsEscaped(t *testing.T) {
	e := newEnv(t, false, false)
	ctx := context.Background()
	const evil = `<script>alert("x")</script>`
	profile := `{"table":"public.evil","stats":{"profiled":true,"rowCount":3,"fields":{"<script>alert(\"x\")</script>":` +
		`{"nullFraction":0.5,"distinctCount":2,"topValues":[{"value":"<img src=x onerror=alert(1)>","count":2,"frequency":0.66}],` +
		`"sample":["<b onmouseover=alert(2)>hi</b>"],"semanticType":"email"}}}}`
	require.NoError(t, e.store.SaveCatalogEntry(ctx, metastore.CatalogEntry{ID: "src/public.evil", SourceID: "postgres://u:hunter2pw@db:5432/app",
		Name: "public.evil", Kind: "table", Description: `<iframe src="javascript:alert(3)"></iframe>`, RowCount: 3,
		Schema:  model.Schema{ID: "src/public.evil", Fields: []model.Field{{Name: evil, DataType: "text", Nullable: true, Description: `<svg onload=alert(4)>`}}},
		Profile: json.RawMessage(profile)}))
	require.NoError(t, e.store.SavePipelineError(ctx, model.PipelineError{PipelineID: "p1", ErrorType: "constraint", Category: "constraint",
		Fingerprint: "fp1", Message: "connect postgres://app:hunter2pw@db:5432/x failed <script>",
		Context: model.ErrorContext{Record: map[string]any{"name": evil, "password": "hunter2pw", "dsn": "postgres://a:hunter2pw@h/db"}}, Timestamp: time.Now()}))
	require.NoError(t, e.store.RecordFingerprint(ctx, metastore.FingerprintDelta{Fingerprint: "fp1", Template: "connect <url> failed <script>",
		Category: "constraint", Message: "password=hunter2pw", Count: 1, Seen: time.Now(), Strategy: "skip", Attempts: 2, Successes: 1}))
	require.NoError(t, e.store.SaveAgentDecision(ctx, model.AgentDecision{AgentID: "a1", AgentType: model.AgentResolution, PipelineID: "p1",
		Action: "escalate", Reasoning: "dsn postgres://u:hunter2pw@db/x said " + evil, Outcome: "escalated"}))

	c := e.client(t)
	e.login(t, c)
	for _, p := range []string{"/ui/catalog?q=evil", "/ui/catalog/entry?id=" + url.QueryEscape("src/public.evil"), "/ui/errors",
		"/ui/errors/fingerprint?fp=fp1", "/ui/decisions", "/ui/"} {
		resp, body := get(t, c, e.srv.URL+p)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", p, body)
		require.NotContains(t, body, "<script>alert", p)
		require.NotContains(t, body, "<img src=x", p)
		require.NotContains(t, body, "<iframe", p)
		require.NotContains(t, body, "<svg onload", p)
		require.NotContains(t, body, "<b onmouseover", p)
		require.NotContains(t, body, "hunter2pw", "%s leaks a password", p)
	}
	_, body := get(t, c, e.srv.URL+"/ui/catalog/entry?id="+url.QueryEscape("src/public.evil"))
	require.Contains(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	require.Contains(t, body, "&lt;img src=x onerror=alert(1)&gt;")
	require.Contains(t, body, "&lt;b onmouseover=alert(2)&gt;hi&lt;/b&gt;")
	_, body = get(t, c, e.srv.URL+"/ui/errors/fingerprint?fp=fp1")
	require.Contains(t, body, "&#34;password&#34;: &#34;xxxxx&#34;")
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`, "&amp;", "&")
	return r.Replace(s)
}

// TestActionsReportFailuresOnThePage: an action that cannot be done is
// explained on the page it was started from, and changes nothing.
func TestActionsReportFailuresOnThePage(t *testing.T) {
	e := newEnv(t, false, false)
	e.createPipeline(t, "p1")
	ctx := context.Background()
	fin := time.Now().UTC()
	require.NoError(t, e.store.SaveExecution(ctx, metastore.Execution{ID: "ex1", PipelineID: "p1", Status: orchestrator.ExecSucceeded,
		RowsIn: 10, RowsOut: 10, StartedAt: fin.Add(-time.Second), FinishedAt: &fin, Message: "read 10 rows, wrote 10"}))
	c := e.client(t)
	csrf := e.login(t, c)

	resp, _ := post(t, c, e.srv.URL+"/ui/executions/ex1/cancel", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/executions/ex1", resp.Header.Get("Location"))
	_, body := get(t, c, e.srv.URL+"/ui/executions/ex1")
	require.Contains(t, body, `class="flash flash-error"`)
	require.Contains(t, body, "is succeeded")
	require.NotContains(t, body, "Cancel this run", "a finished run has no cancel button")

	_, err := e.mgr.SetState(ctx, "p1", orchestrator.StatePaused, "test")
	require.NoError(t, err)
	resp, _ = post(t, c, e.srv.URL+"/ui/pipelines/p1/run", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body = get(t, c, e.srv.URL+"/ui/pipelines/p1")
	require.Contains(t, body, "pipeline is paused")
	xs, err := e.store.ListExecutions(ctx, "p1", 0)
	require.NoError(t, err)
	require.Len(t, xs, 1, "no run started")

	resp, body = get(t, c, e.srv.URL+"/ui/pipelines/nope")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, "<title>Not Found · agentetl</title>")
	resp, _ = get(t, c, e.srv.URL+"/ui/no/such/page")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, body = get(t, c, e.srv.URL+"/ui/reviews/review-1")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "without the automatic loop there are no reviews")
	require.Contains(t, body, "automatic loop is off")
	resp, _ = get(t, c, e.srv.URL+"/ui/decisions?since=yesterday")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// The API keeps its paths under Mount.
	resp, _ = get(t, c, e.srv.URL+"/api/v1/pipelines")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the test mounts a 404 handler as the API")
	require.Empty(t, resp.Header.Get("Content-Security-Policy"), "API responses do not come from the UI")
}
