package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

const uiToken = "ui-test-token-5d1c9e"

// dsnPassword is put into the pipelines' DSN (PostgreSQL under test trusts
// local connections, so any password works); no page may ever show it.
const dsnPassword = "Pw-UI-s3cret-77"

// hostileColumn is a real column name of a real table.
const hostileColumn = `<script>window.__xss=1</script>`

// chromium returns the browser to drive, or "" when there is none.
func chromium() string {
	for _, p := range []string{os.Getenv("CHROMIUM_BIN"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium with a fresh profile, on one tab.
type browser struct {
	t       *testing.T
	ctx     context.Context
	base    string
	shots   string
	secrets []string
	pages   []string
}

func newBrowser(t *testing.T, base string, secrets ...string) *browser {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium found at /usr/bin/chromium (or CHROMIUM_BIN): install it with `apt-get install -y chromium`; .ci/run does")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelC()
		cancelA()
	})
	// The first action starts the browser; it must not run under a timeout.
	require.NoError(t, chromedp.Do(ctx), "start Chromium")
	b := &browser{t: t, ctx: ctx, base: base, shots: filepath.Join(t.TempDir(), "screenshots"), secrets: secrets}
	require.NoError(t, os.MkdirAll(b.shots, 0o750))
	return b
}

func (b *browser) step(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, d)
}

// do runs actions that return nothing.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step(30 * time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...), what)
}

// navigate opens a path and waits for its load.
func (b *browser) navigate(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

// submit clicks a button that sends a form and waits for the next page.
func (b *browser) submit(sel string) {
	b.t.Helper()
	ctx, cancel := b.step(60 * time.Second)
	defer cancel()
	_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	require.NoError(b.t, err, "click %s", sel)
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := b.step(20 * time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(b.t, err, js)
	return v
}

func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// waitText waits until the element's text contains want. It polls from
// Go, so a navigation on the way (a form's redirect) is waited out.
func (b *browser) waitText(sel, want string, timeout time.Duration) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.innerText.includes(%s); })()`, jsString(sel), jsString(want))
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ctx, cancel := b.step(5 * time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	text := eval[string](b, fmt.Sprintf(`(document.querySelector(%s) || document.body).innerText`, jsString(sel)))
	require.Failf(b.t, "text not shown", "%s never contained %q (last error %v); it shows:\n%s", sel, want, lastErr, text)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%s) || {innerText: ""}).innerText`, jsString(sel)))
}

// page checks the page on screen (a sensible title, one h1, no secret in
// the HTML, no inline script) and saves its screenshot as name.png.
func (b *browser) page(name string) {
	b.t.Helper()
	title := eval[string](b, `document.title`)
	require.True(b.t, strings.HasSuffix(title, " · agentetl") && len(title) > len(" · agentetl"), "%s: title %q", name, title)
	require.Equal(b.t, 1, eval[int](b, `document.querySelectorAll("h1").length`), "%s has one h1", name)
	html := eval[string](b, `document.documentElement.outerHTML`)
	for _, s := range b.secrets {
		require.NotContains(b.t, html, s, "%s shows a secret", name)
	}
	require.Zero(b.t, eval[int](b, `[...document.scripts].filter(s => !s.src).length`), "%s has an inline script", name)
	// Every form control has a label or an accessible name.
	unlabeled := eval[[]string](b, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.name || e.id)`)
	require.Empty(b.t, unlabeled, "%s has unlabeled form controls", name)
	ctx, cancel := b.step(30 * time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	f := filepath.Join(b.shots, name+".png")
	require.NoError(b.t, os.WriteFile(f, png, 0o640))
	b.pages = append(b.pages, name)
}

func (b *browser) location() string {
	b.t.Helper()
	ctx, cancel := b.step(10 * time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(b.t, err)
	return loc
}

// TestWebUI is the UI's end-to-end test in a real browser against a real
// orchestrator, engine, bus and PostgreSQL. The steps share one
// installation and build on each other: log in; search the catalog and open
// a table whose names and values are hostile HTML; approve a mapping review
// and see the pipeline reloaded and run with the new version; edit a config
// and see a lint error at its line; run a pipeline whose bad rows go to a
// dead-letter table, fix the destination and replay the fingerprint; read
// the decision log. Every page is screenshotted and checked for secrets.
func TestWebUI(t *testing.T) {
	if chromium() == "" {
		t.Skip("no Chromium found at /usr/bin/chromium (or CHROMIUM_BIN): install it with `apt-get install -y chromium`; .ci/run does")
	}
	start := time.Now()
	db := testpg.NewSchema(t)
	// The review: a target whose names the matcher cannot pair confidently.
	db.Exec(t, `CREATE TABLE orders (id bigint PRIMARY KEY, qty integer)`)
	db.Exec(t, `CREATE TABLE events (id text PRIMARY KEY, kind text)`)
	db.Exec(t, `INSERT INTO orders SELECT g, g % 7 FROM generate_series(1, 100) g`)
	db.Exec(t, `CREATE TABLE order_copy (order_ref bigint PRIMARY KEY, quantity integer)`)
	// The dead letters: five rows the destination's CHECK constraint refuses.
	db.Exec(t, `CREATE TABLE dl_src (id bigint PRIMARY KEY, val text)`)
	db.Exec(t, `INSERT INTO dl_src SELECT g, CASE WHEN g % 20 = 0 THEN 'bad' ELSE 'v' || g END FROM generate_series(1, 100) g`)
	db.Exec(t, `CREATE TABLE dl_dst (id bigint PRIMARY KEY, val text CONSTRAINT val_ok CHECK (val <> 'bad'))`)
	// The hostile table: HTML in its column name, comments and values.
	db.Exec(t, `CREATE TABLE hostile_names (id bigint PRIMARY KEY, "`+hostileColumn+`" text)`)
	db.Exec(t, `COMMENT ON TABLE hostile_names IS '<img src=x onerror="window.__xss=2">'`)
	db.Exec(t, `COMMENT ON COLUMN hostile_names."`+hostileColumn+`" IS '<iframe src="javascript:window.__xss=3"></iframe>'`)
	db.Exec(t, `INSERT INTO hostile_names VALUES (1, '<script>window.__xss=4</script>'), (2, '<b onmouseover="window.__xss=5">bold</b>'), (3, '<script>window.__xss=4</script>')`)

	u, err := url.Parse(db.DSN)
	require.NoError(t, err)
	if _, has := u.User.Password(); !has {
		u.User = url.UserPassword(u.User.Username(), dsnPassword)
	}
	pipeDSN := u.String()

	s := newSite(t, uiToken, map[string]string{"PIPE_PG_DSN": pipeDSN})
	// The hostile table is profiled into the orchestrator's catalog by the
	// real discovery CLI (with samples and top values) before it starts.
	out, err := exec.Command(agentBin, "discover", "--dsn", db.DSN, "--include", db.Schema+".hostile_names", "--store", s.storeDSN()).CombinedOutput()
	require.NoError(t, err, "%s", out)
	s.start(t, "--discovery-interval", "500ms")

	s.api(t, 201, "POST", "/api/v1/pipelines", map[string]any{
		"id": "review-orders", "name": "orders needing review", "type": "batch",
		"source":      map[string]any{"type": "postgres", "table": db.Schema + ".orders", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".order_copy", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
	}, nil)
	s.api(t, 201, "POST", "/api/v1/pipelines", map[string]any{
		"id": "dl-orders", "name": "rows with dead letters", "type": "batch",
		"source":          map[string]any{"type": "postgres", "table": db.Schema + ".dl_src", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"destination":     map[string]any{"type": "postgres", "table": db.Schema + ".dl_dst", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
		"transformations": []any{map[string]any{"id": "copy", "type": "map", "logic": "root = this"}},
		"errorHandling":   map[string]any{"deadLetter": "table:" + db.Schema + ".dl_dead", "maxRetries": 2},
	}, nil)
	// A stream pipeline: the overview shows its live rate from the engine.
	s.api(t, 201, "POST", "/api/v1/pipelines", map[string]any{
		"id": "events-stream", "name": "generated events", "type": "stream",
		"source": map[string]any{"type": "generate", "connection": map[string]any{
			"mapping": `root = {"id": uuid_v4(), "kind": "click"}`, "interval": "20ms"}},
		"destination": map[string]any{"type": "postgres", "table": db.Schema + ".events", "connection": map[string]any{"dsn": "${PIPE_PG_DSN}"}},
	}, nil)
	var reviews struct {
		Reviews []struct {
			ID string `json:"id"`
		} `json:"reviews"`
	}
	require.Eventually(t, func() bool {
		s.api(t, 200, "GET", "/api/v1/reviews?status=pending_review", nil, &reviews)
		return len(reviews.Reviews) == 1
	}, 30*time.Second, 100*time.Millisecond, "the automatic loop opened no review")
	t.Logf("orchestrator, pipelines and review ready after %s", time.Since(start).Round(time.Millisecond))

	b := newBrowser(t, s.baseURL, uiToken, dsnPassword, "postgres://"+u.User.Username()+":")

	t.Run("login", func(t *testing.T) {
		b.t = t
		b.navigate("/ui/pipelines")
		require.Contains(t, b.location(), "/ui/login?next=%2Fui%2Fpipelines", "pages need a login")
		b.page("login")
		b.do("type a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"))
		b.submit(`button[type=submit].primary`)
		b.waitText("main", "not the orchestrator's token", 5*time.Second)
		// By keyboard: type the token, press Enter.
		ctx, cancel := b.step(30 * time.Second)
		_, err := chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.CSS("#token"), uiToken+kb.Enter))
		cancel()
		require.NoError(t, err)
		b.waitText("h1", "Pipelines", 5*time.Second)
		require.True(t, strings.HasSuffix(b.location(), "/ui/pipelines"), "back where the login started")
		b.waitText("main", "dl-orders", 2*time.Second)
		b.page("pipelines")
		// The first Tab stop is the skip link.
		b.do("tab", chromedp.KeyEvent(kb.Tab))
		require.Equal(t, "Skip to content", eval[string](b, `document.activeElement.innerText`))

		b.navigate("/ui/")
		b.waitText("#overview-live", "review-orders", 2*time.Second)
		b.waitText("#h-reviews + p", "1 review(s) wait", 2*time.Second)
		// The stream's rate comes live from the engine's counters.
		b.waitText("#overview-live", "avg since start", 10*time.Second)
		b.page("overview")
		// The overview updates itself without a reload.
		eval[bool](b, `window.__marker = true`)
		before := b.text(".updated")
		ctx, cancel = b.step(20 * time.Second)
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector(".updated").innerText !== %s`, jsString(before)),
			chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(200*time.Millisecond)))
		cancel()
		require.NoError(t, err, "the overview did not refresh itself")
		require.True(t, eval[bool](b, `window.__marker === true`), "it refreshed in place, not by reloading")
	})

	t.Run("catalog search and a hostile table", func(t *testing.T) {
		b.t = t
		b.navigate("/ui/")
		ctx, cancel := b.step(30 * time.Second)
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`nav a[href="/ui/catalog"]`)))
		cancel()
		require.NoError(t, err)
		ctx, cancel = b.step(30 * time.Second)
		_, err = chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.CSS("#c-q"), "hostile"+kb.Enter))
		cancel()
		require.NoError(t, err)
		b.waitText("#catalog-results", db.Schema+".hostile_names", 5*time.Second)
		require.Contains(t, b.location(), "q=hostile")
		b.page("catalog")
		ctx, cancel = b.step(30 * time.Second)
		_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`#catalog-results a[href^="/ui/catalog/entry"]`)))
		cancel()
		require.NoError(t, err)
		b.waitText("h1", "hostile_names", 5*time.Second)
		b.page("catalog-table")

		// Everything hostile is shown as text and nothing ran.
		main := b.text("main")
		for _, want := range []string{hostileColumn, `<img src=x onerror="window.__xss=2">`,
			`<iframe src="javascript:window.__xss=3"></iframe>`, `<script>window.__xss=4</script>`, `<b onmouseover="window.__xss=5">bold</b>`} {
			require.Contains(t, main, want, "shown as text")
		}
		require.True(t, eval[bool](b, `typeof window.__xss === "undefined"`), "no injected script ran")
		require.Equal(t, 1, eval[int](b, `document.scripts.length`), "the only script is app.js")
		require.Zero(t, eval[int](b, `document.querySelectorAll("main img, main iframe, main b, [onerror], [onmouseover], [onload]").length`),
			"no injected element exists")
		// The profile: top values drawn as bars, the column's description.
		require.GreaterOrEqual(t, eval[int](b, `document.querySelectorAll("ul.topvals li svg.bar").length`), 2)
		require.Contains(t, main, "Schema history")
		require.Contains(t, main, "Version 1")
	})

	t.Run("approve a review and see the pipeline reloaded", func(t *testing.T) {
		b.t = t
		b.navigate("/ui/")
		ctx, cancel := b.step(30 * time.Second)
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`nav a[href="/ui/reviews"]`)))
		cancel()
		require.NoError(t, err)
		b.waitText("main table", "review-orders", 5*time.Second)
		b.page("reviews")
		b.submit(`main table a[href^="/ui/reviews/review-"]`)
		b.waitText("h1", "review-orders", 5*time.Second)
		require.Positive(t, eval[int](b, `document.querySelectorAll("svg.links-svg line.link").length`), "the proposed links are drawn")
		require.Positive(t, eval[int](b, `document.querySelectorAll("table.mapping ul.signals li").length`), "each signal's contribution is shown")
		main := b.text("main")
		require.Contains(t, main, "order_ref")
		require.Contains(t, main, "Generated transformation")
		b.page("review")
		b.do("reviewer", chromedp.SetValue(chromedp.CSS("#reviewer"), "alice"),
			chromedp.SetValue(chromedp.CSS("#rcomment"), "order_ref is the order id"))
		b.submit("#approve-all")
		b.waitText(".flash-ok", "now at version 2 and active", 10*time.Second)
		require.Equal(t, "v2", b.text("#pipeline-version"))
		require.Equal(t, "active", b.text("#pipeline-state"))
		require.Contains(t, b.text("#config"), `root."order_ref" = this."id"`, "the page shows the new version's config")
		b.page("pipeline-after-review")

		// The new version runs: start it from the page and watch it finish.
		b.submit(`form[action="/ui/pipelines/review-orders/run"] button`)
		b.waitText("h1", "Run of review-orders", 5*time.Second)
		b.waitText("#exec-live", "succeeded", 30*time.Second)
		b.page("execution")
		require.EqualValues(t, 100, db.Int(t, `SELECT count(*) FROM order_copy`))

		var ds struct {
			Decisions []struct {
				Action, AgentID string
			} `json:"decisions"`
		}
		s.api(t, 200, "GET", "/api/v1/decisions?pipelineId=review-orders&limit=1000", nil, &ds)
		acts := map[string]int{}
		for _, d := range ds.Decisions {
			acts[d.Action+"/"+d.AgentID]++
		}
		require.Equal(t, 1, acts["review_approved/alice"], "%v", acts)
		require.GreaterOrEqual(t, acts["mapping.accepted/alice"], 1, "the approval feeds the mapping history: %v", acts)
	})

	t.Run("edit a config and see a lint error at its line", func(t *testing.T) {
		b.t = t
		b.navigate("/ui/pipelines/dl-orders")
		b.submit(`a[href="/ui/pipelines/dl-orders/edit"]`)
		b.waitText("#lint-status", "Not checked yet", 5*time.Second)
		ctx, cancel := b.step(10 * time.Second)
		orig, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#config-editor")))
		cancel()
		require.NoError(t, err)
		lines := strings.Split(orig, "\n")
		// Rename the destination's "table" key: an unknown field.
		inDest, at := false, -1
		for i, l := range lines {
			if strings.HasPrefix(l, "destination:") {
				inDest = true
			} else if inDest && strings.HasPrefix(l, "  table:") {
				at = i
				break
			}
		}
		require.Positive(t, at, orig)
		bad := append([]string(nil), lines...)
		bad[at] = strings.Replace(bad[at], "table:", "tabel:", 1)
		typeInto(b, strings.Join(bad, "\n"))
		want := fmt.Sprintf("line %d, column 3: destination.tabel: unknown field", at+1)
		b.waitText("#lint-issues", want, 10*time.Second)
		require.Contains(t, b.text("#lint-status"), "1 problem")
		// The issue takes the caret to its line.
		b.do("go to the issue", chromedp.Click(chromedp.CSS("#lint-issues button")))
		caret := eval[int](b, `document.getElementById("config-editor").selectionStart`)
		require.Equal(t, len(strings.Join(bad[:at], "\n"))+1, caret)
		b.page("edit-lint-error")

		// Saving the broken config stores nothing.
		b.submit(`button[name=op][value=save]`)
		b.waitText("main", "Nothing was saved", 5*time.Second)
		require.Contains(t, b.text("main"), fmt.Sprintf("line %d, column 3", at+1))

		// Fixed and described, it saves as version 2.
		fixed := strings.Replace(orig, "metadata: {}", "metadata:\n  description: edited in the browser", 1)
		require.NotEqual(t, orig, fixed, orig)
		typeInto(b, fixed)
		b.waitText("#lint-status", "No problems", 10*time.Second)
		b.submit(`button[name=op][value=save]`)
		b.waitText(".flash-ok", "Saved pipeline dl-orders as version 2", 10*time.Second)
		require.Equal(t, "v2", b.text("#pipeline-version"))
		b.navigate("/ui/pipelines/dl-orders?v=2")
		b.waitText("#versions", "+  description: edited in the browser", 5*time.Second)
	})

	t.Run("replay a dead-letter fingerprint", func(t *testing.T) {
		b.t = t
		b.navigate("/ui/pipelines/dl-orders")
		b.submit(`form[action="/ui/pipelines/dl-orders/run"] button`)
		b.waitText("h1", "Run of dl-orders", 5*time.Second)
		eval[bool](b, `window.__marker = true`)
		b.waitText("#exec-live", "succeeded", 30*time.Second)
		require.True(t, eval[bool](b, `window.__marker === true`), "the running execution was updated in place")
		require.Contains(t, strings.ToLower(b.text("#exec-live")), "dead letters\n5")
		require.EqualValues(t, 95, db.Int(t, `SELECT count(*) FROM dl_dst`))
		require.EqualValues(t, 5, db.Int(t, `SELECT count(*) FROM dl_dead`))

		// The fix: the destination accepts the rows now.
		db.Exec(t, `ALTER TABLE dl_dst DROP CONSTRAINT val_ok`)
		ctx, cancel := b.step(30 * time.Second)
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`nav a[href="/ui/errors"]`)))
		cancel()
		require.NoError(t, err)
		b.waitText("#fingerprints", "constraint", 5*time.Second)
		b.page("errors")
		found := eval[bool](b, `(() => { const row = [...document.querySelectorAll("#fingerprints tbody tr")].find(r => r.innerText.includes("dl_dst"));
			if (!row) return false; row.querySelector("a").id = "dl-fingerprint"; return true; })()`)
		require.True(t, found, "a fingerprint row names dl_dst:\n%s", b.text("#fingerprints"))
		b.submit("#dl-fingerprint")
		b.waitText("h1", "Error fingerprint", 10*time.Second)
		main := b.text("main")
		require.Contains(t, strings.ToLower(main), "occurrences\n5", "five occurrences")
		require.Contains(t, main, `"val": "bad"`, "a sample payload")
		require.Contains(t, main, "skip", "the strategy applied")
		require.Contains(t, main, "100%", "its success rate")
		b.page("fingerprint")
		b.submit("#replay-button")
		b.waitText(".flash-ok", "Replayed 5 dead-letter record(s) of pipeline dl-orders", 30*time.Second)
		require.EqualValues(t, 100, db.Int(t, `SELECT count(*) FROM dl_dst`), "every row arrived")
		require.EqualValues(t, 0, db.Int(t, `SELECT count(*) FROM dl_dst WHERE val IS NULL`))
		// Replaying again adds nothing.
		b.submit("#replay-button")
		b.waitText(".flash-info", "Nothing to replay", 30*time.Second)
		require.EqualValues(t, 100, db.Int(t, `SELECT count(*) FROM dl_dst`))
	})

	t.Run("decisions", func(t *testing.T) {
		b.t = t
		b.navigate("/ui/decisions")
		b.do("filter", chromedp.SetValue(chromedp.CSS("#d-pipe"), "review-orders"),
			chromedp.SetValue(chromedp.CSS("#d-agent"), "mapping"))
		b.submit(`form[action="/ui/decisions"] button[type=submit]`)
		b.waitText("#decisions", "review_approved", 5*time.Second)
		main := b.text("#decisions")
		require.Contains(t, main, "alice approved review")
		require.NotContains(t, main, "create_pipeline", "filtered to the mapping agent")
		b.page("decisions")
		b.navigate("/ui/new-pipeline")
		b.page("new-pipeline")
	})

	t.Run("screenshots", func(t *testing.T) {
		want := []string{"login", "pipelines", "overview", "catalog", "catalog-table", "reviews", "review", "pipeline-after-review",
			"execution", "edit-lint-error", "errors", "fingerprint", "decisions", "new-pipeline"}
		for _, name := range want {
			f := filepath.Join(b.shots, name+".png")
			data, err := os.ReadFile(f)
			require.NoError(t, err, "screenshot of %s", name)
			require.True(t, bytes.HasPrefix(data, []byte("\x89PNG")), "%s is a PNG", name)
			require.Greater(t, len(data), 5000, "%s is not blank", name)
		}
		if dir := os.Getenv("AGENTETL_UI_SCREENSHOTS"); dir != "" {
			require.NoError(t, os.MkdirAll(dir, 0o750))
			for _, name := range b.pages {
				data, err := os.ReadFile(filepath.Join(b.shots, name+".png"))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), data, 0o640))
			}
		}
		t.Logf("%d pages screenshotted under %s; whole test %s", len(b.pages), b.shots, time.Since(start).Round(time.Millisecond))
	})
}

// typeInto replaces the editor's text the way typing does: the value
// changes and an input event fires, which starts the live lint.
func typeInto(b *browser, text string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(() => { const a = document.getElementById("config-editor"); a.focus(); a.value = %s;
		a.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, jsString(text)))
}
