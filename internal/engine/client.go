// Package engine talks to a running agentetl engine in Benthos streams mode
// and, optionally, owns that engine as a supervised child process.
//
// The client uses the per-stream endpoints only (POST, PUT, GET, DELETE
// /streams/{id}, GET /streams/{id}/stats and GET /streams). It deliberately
// has no method for POST /streams: that endpoint replaces the whole set of
// streams, so one bad request would stop every pipeline, and an update of
// one pipeline must restart only that pipeline's stream.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentetl/agentetl/internal/redact"
)

// Errors returned by the client. Callers test them with errors.Is.
var (
	// ErrNotFound: the engine has no stream with that id.
	ErrNotFound = errors.New("engine: stream not found")
	// ErrExists: POST for an id the engine already runs.
	ErrExists = errors.New("engine: stream already exists")
	// ErrUnavailable: the engine could not be reached at all (not started,
	// restarting, or gone). Reconciliation retries these.
	ErrUnavailable = errors.New("engine: unavailable")
)

// LintIssue is one lint error with its position in the submitted YAML.
type LintIssue struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// String renders the issue as line:col: message, the form editors jump to.
func (l LintIssue) String() string {
	return fmt.Sprintf("%d:%d: %s", l.Line, l.Column, l.Message)
}

// LintError is returned when the engine rejected a config because of lint
// errors (HTTP 400 with a lint_errors body). Nothing was applied.
type LintError struct {
	Issues []LintIssue
}

func (e *LintError) Error() string {
	parts := make([]string, len(e.Issues))
	for i, l := range e.Issues {
		parts[i] = l.String()
	}
	return "engine: config rejected by lint: " + strings.Join(parts, "; ")
}

// RequestError is any other non-success answer from the engine. Body is
// redacted: Benthos echoes parts of configs in its errors.
type RequestError struct {
	Method string
	Path   string
	Status int
	Body   string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("engine: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// StreamInfo is one entry of GET /streams.
type StreamInfo struct {
	Active bool `json:"active"`
	// Uptime in seconds. For a stream that ended (a finished bounded run)
	// it is frozen at the moment the stream closed.
	Uptime    float64 `json:"uptime"`
	UptimeStr string  `json:"uptime_str"`
}

// UptimeDuration is Uptime as a time.Duration.
func (s StreamInfo) UptimeDuration() time.Duration {
	return time.Duration(s.Uptime * float64(time.Second))
}

// Stats are the counters of one stream that an execution needs, summed over
// every component of the stream (a stream has one input and one output, but
// several processors).
type Stats struct {
	// RowsIn counts messages received by the stream's input.
	RowsIn int64 `json:"rowsIn"`
	// RowsOut counts messages the output delivered.
	RowsOut int64 `json:"rowsOut"`
	// DeadLetter counts messages sent to the dead-letter output.
	DeadLetter int64 `json:"deadLetter"`
	// OutputErrors counts failed write attempts (each retried batch counts).
	OutputErrors int64 `json:"outputErrors"`
	// ProcessorErrors counts messages a processor flagged as failed.
	ProcessorErrors int64 `json:"processorErrors"`
	// ConnectionFailures counts failed connection attempts of input and
	// output; a run stuck on a wrong password shows up here.
	ConnectionFailures int64 `json:"connectionFailures"`
	// Uptime of the stream.
	Uptime time.Duration `json:"uptime"`
	// Raw holds every counter as the engine reported it, keyed by metric
	// name with labels.
	Raw map[string]int64 `json:"-"`
}

// Errors is the total of the error counters.
func (s Stats) Errors() int64 { return s.OutputErrors + s.ProcessorErrors + s.ConnectionFailures }

// Client calls the streams API of one engine. Safe for concurrent use.
type Client struct {
	base *url.URL
	hc   *http.Client
}

// NewClient returns a client for the engine at baseURL (for example
// http://127.0.0.1:4195). hc may be nil.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("engine: parse URL %q: %w", redact.DSN(baseURL), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("engine: URL %q must start with http:// or https://", redact.DSN(baseURL))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("engine: URL %q has no host", redact.DSN(baseURL))
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: u, hc: hc}, nil
}

// URL returns the engine's base URL.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) streamPath(id string, suffix string) string {
	return "/streams/" + url.PathEscape(id) + suffix
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, query url.Values) (int, []byte, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, fmt.Errorf("engine: build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("engine: %s %s: %w", method, path, ctx.Err())
		}
		return 0, nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	// Engine answers are small (a stream list of a few hundred entries is
	// tens of KiB); the cap only guards against a misbehaving endpoint.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%w: %s %s: read body: %w", ErrUnavailable, method, path, err)
	}
	return resp.StatusCode, b, nil
}

// lintPos matches the "(line,col) message" form of Benthos lint errors.
var lintPos = regexp.MustCompile(`^\((\d+),(\d+)\)\s*(.*)$`)

// ParseLintIssue turns one Benthos lint string into a LintIssue.
func ParseLintIssue(s string) LintIssue {
	if m := lintPos.FindStringSubmatch(s); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		return LintIssue{Line: line, Column: col, Message: m[3]}
	}
	return LintIssue{Line: 1, Column: 1, Message: s}
}

func (c *Client) classify(method, path string, status int, body []byte) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %s %s", ErrNotFound, method, path)
	case status == http.StatusBadRequest:
		var le struct {
			LintErrs []string `json:"lint_errors"`
		}
		if json.Unmarshal(body, &le) == nil && len(le.LintErrs) > 0 {
			out := &LintError{}
			for _, s := range le.LintErrs {
				l := ParseLintIssue(s)
				l.Message = redact.String(l.Message)
				out.Issues = append(out.Issues, l)
			}
			return out
		}
		if strings.Contains(string(body), "Stream already exists") {
			return fmt.Errorf("%w: %s %s", ErrExists, method, path)
		}
	}
	return &RequestError{Method: method, Path: path, Status: status, Body: redact.String(strings.TrimSpace(string(body)))}
}

// Ping reports whether the engine's HTTP server answers.
func (c *Client) Ping(ctx context.Context) error {
	status, body, err := c.do(ctx, http.MethodGet, "/ping", nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return &RequestError{Method: http.MethodGet, Path: "/ping", Status: status, Body: redact.String(string(body))}
	}
	return nil
}

// List returns every stream the engine knows, active or ended.
func (c *Client) List(ctx context.Context) (map[string]StreamInfo, error) {
	status, body, err := c.do(ctx, http.MethodGet, "/streams", nil, nil)
	if err != nil {
		return nil, err
	}
	if err := c.classify(http.MethodGet, "/streams", status, body); err != nil {
		return nil, err
	}
	out := map[string]StreamInfo{}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("engine: decode stream list: %w", err)
	}
	return out, nil
}

// Get returns the state of one stream. The engine's copy of the config is
// not returned: the engine substitutes environment variables before storing
// it, so it holds secrets in clear.
func (c *Client) Get(ctx context.Context, id string) (StreamInfo, error) {
	p := c.streamPath(id, "")
	status, body, err := c.do(ctx, http.MethodGet, p, nil, nil)
	if err != nil {
		return StreamInfo{}, err
	}
	if err := c.classify(http.MethodGet, p, status, body); err != nil {
		return StreamInfo{}, err
	}
	var info StreamInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return StreamInfo{}, fmt.Errorf("engine: decode stream %s: %w", id, err)
	}
	return info, nil
}

// Create starts a new stream. ErrExists if the id is taken, *LintError if
// the engine's linter rejects the config.
func (c *Client) Create(ctx context.Context, id string, config []byte) error {
	p := c.streamPath(id, "")
	status, body, err := c.do(ctx, http.MethodPost, p, config, nil)
	if err != nil {
		return err
	}
	return c.classify(http.MethodPost, p, status, body)
}

// Update replaces one stream's config: the engine stops that stream
// (waiting up to timeout for in-flight messages) and starts the new one.
// Other streams are not touched. ErrNotFound if the stream does not exist.
func (c *Client) Update(ctx context.Context, id string, config []byte, timeout time.Duration) error {
	p := c.streamPath(id, "")
	status, body, err := c.do(ctx, http.MethodPut, p, config, timeoutQuery(timeout))
	if err != nil {
		return err
	}
	return c.classify(http.MethodPut, p, status, body)
}

// Delete stops and removes one stream. Deleting a missing stream returns
// ErrNotFound so callers can treat it as done.
func (c *Client) Delete(ctx context.Context, id string, timeout time.Duration) error {
	p := c.streamPath(id, "")
	status, body, err := c.do(ctx, http.MethodDelete, p, nil, timeoutQuery(timeout))
	if err != nil {
		return err
	}
	return c.classify(http.MethodDelete, p, status, body)
}

// Apply creates the stream, or updates it when it already exists.
func (c *Client) Apply(ctx context.Context, id string, config []byte, timeout time.Duration) error {
	err := c.Create(ctx, id, config)
	if errors.Is(err, ErrExists) {
		return c.Update(ctx, id, config, timeout)
	}
	return err
}

func timeoutQuery(d time.Duration) url.Values {
	if d <= 0 {
		return nil
	}
	return url.Values{"timeout": []string{d.String()}}
}

// Stats reads a stream's counters.
func (c *Client) Stats(ctx context.Context, id string) (Stats, error) {
	p := c.streamPath(id, "/stats")
	status, body, err := c.do(ctx, http.MethodGet, p, nil, nil)
	if err != nil {
		return Stats{}, err
	}
	if err := c.classify(http.MethodGet, p, status, body); err != nil {
		return Stats{}, err
	}
	return ParseStats(body)
}

// ParseStats decodes the body of GET /streams/{id}/stats. Counters are keyed
// by metric name followed by labels, e.g.
// input_received{label="",path="root.input",stream="s1"}; timings are
// objects and are ignored.
func ParseStats(body []byte) (Stats, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Stats{}, fmt.Errorf("engine: decode stats: %w", err)
	}
	st := Stats{Raw: map[string]int64{}}
	var outputDead int64
	for k, v := range raw {
		var n int64
		if json.Unmarshal(v, &n) != nil {
			continue
		}
		st.Raw[k] = n
		name, labels, _ := strings.Cut(k, "{")
		switch name {
		case "uptime_ns":
			st.Uptime = time.Duration(n)
		case "input_received":
			// Only the stream's own input: a processor-level input (a
			// branch, a cached lookup) is not a source row.
			if strings.Contains(labels, `path="root.input"`) {
				st.RowsIn += n
			}
		case "output_sent":
			// The destination is the root output, or, when a dead-letter
			// switch wraps it, the case labelled destination; records
			// routed to the case labelled dead_letter are counted apart.
			switch {
			case strings.Contains(labels, `label="dead_letter"`):
				st.DeadLetter += n
			case strings.Contains(labels, `label="destination"`) || strings.Contains(labels, `path="root.output"`):
				st.RowsOut += n
			}
		case "error_resolution_dead_letters":
			// Records the error_resolution agent stored as dead letters:
			// those set aside by the output wrapper were acknowledged, so
			// the root output counted them as sent; they are not rows out.
			st.DeadLetter += n
			if strings.Contains(labels, `path="root.output"`) {
				outputDead += n
			}
		case "output_error":
			// Write errors of an output wrapped by error_resolution are
			// handled (retried, isolated, dead-lettered) by the wrapper;
			// only the wrapper's own errors reach the pipeline.
			if !strings.Contains(labels, ".error_resolution.output") {
				st.OutputErrors += n
			}
		case "processor_error":
			st.ProcessorErrors += n
		case "input_connection_failed", "output_connection_failed":
			st.ConnectionFailures += n
		}
	}
	st.RowsOut -= outputDead
	return st, nil
}
