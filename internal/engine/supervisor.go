package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentetl/agentetl/internal/redact"
)

// SupervisorConfig configures a Supervisor. Zero values get defaults.
type SupervisorConfig struct {
	// Binary is the agentetl executable; see ResolveBinary.
	Binary string
	// Host is the loopback address the engine's HTTP API binds to. The
	// API has no authentication, so it must never listen on a public
	// interface. Default 127.0.0.1.
	Host string
	// Port of the engine's HTTP API. 0 picks a free port at every start,
	// so a leftover engine of a killed orchestrator can never be confused
	// with ours.
	Port int
	// Dir is the engine's working directory; its observability config is
	// written there. Required.
	Dir string
	// Env is added to the inherited environment of the child. Secrets that
	// pipelines reference as ${VAR} must be in the child's environment.
	Env []string
	// DropEnv names variables of our environment the child must not
	// inherit (the API token: the engine has no use for it).
	DropEnv []string
	// OnStart runs after every (re)start, once the engine answers, with a
	// client for it. The orchestrator re-applies every stream here: a new
	// engine process starts empty.
	OnStart func(ctx context.Context, c *Client) error
	// MinBackoff and MaxBackoff bound the delay between restarts; the delay
	// doubles after each quick death and resets after StableAfter.
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	StableAfter time.Duration
	// ReadyTimeout is how long a fresh engine may take to answer /ping.
	ReadyTimeout time.Duration
	// StopTimeout is how long a stopping engine gets after SIGTERM before
	// SIGKILL.
	StopTimeout time.Duration
	// LogLevel is the engine's Benthos log level. Default INFO.
	LogLevel string
	Logger   *slog.Logger
}

// Supervisor runs one `agentetl streams` child process, restarts it with
// backoff whenever it dies, and calls OnStart after each start.
type Supervisor struct {
	cfg SupervisorConfig
	log *slog.Logger

	mu       sync.Mutex
	client   *Client
	pid      int
	ready    bool
	restarts atomic.Int64
	readyCh  chan struct{} // closed on the first successful start
	once     sync.Once
}

// ResolveBinary finds the engine executable: flag when set, otherwise
// "agentetl" in the directory of the running executable (the layout of
// bin/ and of release archives), otherwise "agentetl" on PATH.
func ResolveBinary(flag string) (string, error) {
	if flag != "" {
		p, err := exec.LookPath(flag)
		if err != nil {
			return "", fmt.Errorf("engine binary %q: %w", flag, err)
		}
		return filepath.Abs(p)
	}
	if self, err := os.Executable(); err == nil {
		cand := filepath.Join(filepath.Dir(self), "agentetl")
		if st, err := os.Stat(cand); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return cand, nil
		}
	}
	p, err := exec.LookPath("agentetl")
	if err != nil {
		return "", fmt.Errorf("engine binary: no agentetl next to this executable or on PATH (set --engine-bin): %w", err)
	}
	return filepath.Abs(p)
}

// NewSupervisor checks cfg and fills defaults. Nothing starts until Run.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Binary == "" {
		return nil, errors.New("engine supervisor: no binary")
	}
	if cfg.Dir == "" {
		return nil, errors.New("engine supervisor: no working directory")
	}
	// The child runs in Dir, so every path handed to it must be absolute.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("engine supervisor: working directory: %w", err)
	}
	cfg.Dir = dir
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(cfg.Host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("engine supervisor: host %q is not a loopback address; the streams API has no authentication", cfg.Host)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 20 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "INFO"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Supervisor{cfg: cfg, log: cfg.Logger.With("component", "engine"), readyCh: make(chan struct{})}, nil
}

// Client returns a client for the current engine process, or nil before
// the first start. The URL changes across restarts when Port is 0.
func (s *Supervisor) Client() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// Ready reports whether an engine is running, answering, and has been
// reconciled by OnStart.
func (s *Supervisor) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// PID is the current child's process id, 0 when none runs.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Restarts counts starts after the first.
func (s *Supervisor) Restarts() int64 { return s.restarts.Load() }

// WaitReady blocks until the first start has completed or ctx ends.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	select {
	case <-s.readyCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: not ready: %w", ctx.Err())
	}
}

// Run starts the engine and keeps it running until ctx ends, then stops it
// (SIGTERM, then SIGKILL after StopTimeout). It returns only when ctx ends
// or the engine cannot be started at all (missing binary).
func (s *Supervisor) Run(ctx context.Context) error {
	backoff := s.cfg.MinBackoff
	first := true
	for {
		if !first {
			s.restarts.Add(1)
		}
		first = false
		started := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("engine: cannot start %s: %w", s.cfg.Binary, err)
		}
		if time.Since(started) > s.cfg.StableAfter {
			backoff = s.cfg.MinBackoff
		}
		s.log.Warn("engine stopped; restarting", "err", redactErr(err), "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

func redactErr(err error) string {
	if err == nil {
		return ""
	}
	return redact.String(err.Error())
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the engine binds it; the engine then fails to listen and
// the supervisor simply starts it again on another port.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("engine: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// observability writes the root config of streams mode: where the API
// listens and how the engine logs. It is marshalled, not templated.
func (s *Supervisor) observability(addr string) (string, error) {
	doc := map[string]any{
		"http": map[string]any{
			"enabled": true,
			"address": addr,
		},
		"logger": map[string]any{
			"level":  s.cfg.LogLevel,
			"format": "logfmt",
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("engine: encode observability config: %w", err)
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o750); err != nil {
		return "", fmt.Errorf("engine: working directory: %w", err)
	}
	p := filepath.Join(s.cfg.Dir, "engine-observability.yaml")
	if err := os.WriteFile(p, b, 0o640); err != nil {
		return "", fmt.Errorf("engine: write observability config: %w", err)
	}
	return p, nil
}

func (s *Supervisor) runOnce(ctx context.Context) error {
	port := s.cfg.Port
	if port == 0 {
		p, err := freePort(s.cfg.Host)
		if err != nil {
			return err
		}
		port = p
	}
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(port))
	obs, err := s.observability(addr)
	if err != nil {
		return err
	}
	client, err := NewClient("http://"+addr, nil)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.cfg.Binary, "streams", "-o", obs)
	cmd.Dir = s.cfg.Dir
	cmd.Env = append(childEnv(os.Environ(), s.cfg.DropEnv), s.cfg.Env...)
	// The child dies with us, even on kill -9: a leftover engine would keep
	// running pipelines nobody supervises. (Linux only.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("engine: stdout pipe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("engine: stderr pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("engine: start %s: %w", s.cfg.Binary, err)
	}
	pid := cmd.Process.Pid
	log := s.log.With("pid", pid, "addr", addr)
	log.Info("engine started", "binary", s.cfg.Binary)
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); s.forward(log, stdout) }()
	go func() { defer pipes.Done(); s.forward(log, stderr) }()

	exited := make(chan error, 1)
	go func() {
		pipes.Wait()
		exited <- cmd.Wait()
	}()

	s.mu.Lock()
	s.client, s.pid, s.ready = client, pid, false
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pid, s.ready = 0, false
		s.mu.Unlock()
	}()

	// Wait for the API, then reconcile; both are abandoned if the child
	// dies meanwhile.
	hookCtx, cancelHook := context.WithCancel(ctx)
	defer cancelHook()
	hookDone := make(chan error, 1)
	go func() {
		if err := waitPing(hookCtx, client, s.cfg.ReadyTimeout); err != nil {
			hookDone <- err
			return
		}
		if s.cfg.OnStart != nil {
			if err := s.cfg.OnStart(hookCtx, client); err != nil {
				// A failed reconcile is not a reason to kill the engine:
				// the periodic reconciliation retries it.
				log.Error("engine start hook failed", "err", redactErr(err))
			}
		}
		hookDone <- nil
	}()

	for {
		select {
		case err := <-exited:
			return fmt.Errorf("engine process %d exited: %w", pid, errOrExit(err))
		case err := <-hookDone:
			hookDone = nil
			if err != nil {
				log.Error("engine did not become ready; killing it", "err", redactErr(err))
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				<-exited
				return err
			}
			s.mu.Lock()
			s.ready = true
			s.mu.Unlock()
			s.once.Do(func() { close(s.readyCh) })
			log.Info("engine ready")
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(s.cfg.StopTimeout):
				log.Warn("engine did not stop after SIGTERM; killing it")
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				<-exited
			}
			log.Info("engine stopped")
			return ctx.Err()
		}
	}
}

func errOrExit(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func waitPing(ctx context.Context, c *Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("engine: no answer on %s within %s: %w", c.URL(), timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forward turns the engine's log lines into slog records. Lines are
// redacted: a driver error can echo a connection string.
func (s *Supervisor) forward(log *slog.Logger, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := redact.String(sc.Text())
		level := slog.LevelInfo
		switch {
		case containsAny(line, "level=error", "level=fatal"):
			level = slog.LevelError
		case containsAny(line, "level=warn"):
			level = slog.LevelWarn
		case containsAny(line, "level=debug", "level=trace"):
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "engine log", "line", line)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func childEnv(env, drop []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			if k == d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}
