package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

var (
	// agentBin is the agentetl binary under test.
	agentBin string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
)

// pipelineEnv lists every variable the example configs read; they are
// removed from the inherited environment so a developer's shell cannot leak
// into a test.
var pipelineEnv = []string{
	"SOURCE_DSN", "SOURCE_TABLE", "TARGET_DSN", "TARGET_TABLE", "KEY_COLUMN",
	"PAGE_SIZE", "STORE_DSN", "MAX_IN_FLIGHT", "LOG_LEVEL", "AGENTETL_CPUPROFILE",
	"DLQ_TABLE", "WRITE_MODE", "BUS_URL", "DISCOVER_INCLUDE", "DISCOVER_INTERVAL", "DISCOVER_PROFILE", "ALERT_FILE",
}

func TestMain(m *testing.M) {
	code := runMain(m)
	testpg.StopClusters()
	os.Exit(code)
}

func runMain(m *testing.M) int {
	root, err := testutil.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	moduleRoot = root
	dir, err := os.MkdirTemp("", "agentetl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if agentBin, err = testutil.Binary(dir, "AGENTETL_BINARY", "./cmd/agentetl", "agentetl"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// exampleConfig is the absolute path of the postgres-to-postgres example.
func exampleConfig() string {
	return filepath.Join(moduleRoot, "configs", "examples", "postgres-to-postgres.yaml")
}

// proc is one running agentetl process.
type proc struct {
	cmd     *exec.Cmd
	ctx     context.Context
	stdout  testutil.Buffer
	stderr  testutil.Buffer
	started time.Time
	done    chan struct{}
	elapsed time.Duration
}

// startAgent starts agentetl with args and env (on top of the inherited
// environment minus pipelineEnv). The process is killed when timeout passes
// and, at the latest, when the test ends.
func startAgent(t *testing.T, timeout time.Duration, env map[string]string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	p := &proc{ctx: ctx, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, agentBin, args...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = childEnv(env)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	p.started = time.Now()
	require.NoError(t, p.cmd.Start(), "start %s", agentBin)
	go func() {
		_ = p.cmd.Wait()
		p.elapsed = time.Since(p.started)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			t.Logf("killing leftover agentetl process %d", p.cmd.Process.Pid)
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("agentetl process %d did not die after SIGKILL", p.cmd.Process.Pid)
			}
		}
		cancel()
	})
	return p
}

func childEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, e := range pipelineEnv {
			if k == e {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output is stdout and stderr, labelled, for assertions and failure messages.
func (p *proc) output() string {
	return "--- stdout ---\n" + p.stdout.String() + "--- stderr ---\n" + p.stderr.String()
}

// waitExit waits for the process to end on its own and returns its exit
// code. It fails the test if the process hung until its deadline or died
// from a signal.
func (p *proc) waitExit(t *testing.T) int {
	t.Helper()
	<-p.done
	require.NoError(t, p.ctx.Err(), "agentetl %v did not exit on its own before its deadline (hang); killed after %s\n%s",
		p.cmd.Args[1:], p.elapsed.Round(time.Millisecond), p.output())
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.False(t, ws.Signaled(), "agentetl died from signal %v\n%s", ws.Signal(), p.output())
	return p.cmd.ProcessState.ExitCode()
}

// kill sends SIGKILL and waits for the process to die. It fails the test if
// the process had already exited by itself.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "agentetl did not die within 10s of SIGKILL")
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL,
		"agentetl finished (exit %d) before it could be killed\n%s", p.cmd.ProcessState.ExitCode(), p.output())
}

// runAgent runs agentetl to completion and returns its exit code and output.
func runAgent(t *testing.T, timeout time.Duration, env map[string]string, args ...string) (int, string, time.Duration) {
	t.Helper()
	p := startAgent(t, timeout, env, args...)
	code := p.waitExit(t)
	t.Logf("agentetl %s: exit %d after %s", strings.Join(args, " "), code, p.elapsed.Round(time.Millisecond))
	return code, p.output(), p.elapsed
}

// getCheckpoint reads a checkpoint from a store; found is false on
// metastore.ErrNotFound, any other error fails the test.
func getCheckpoint(t *testing.T, storeDSN, id string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := metastore.Open(ctx, storeDSN)
	require.NoError(t, err, "open checkpoint store %s", storeDSN)
	defer st.Close()
	pos, err := st.GetCheckpoint(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) {
		return "", false
	}
	require.NoError(t, err, "get checkpoint %q", id)
	return pos, true
}

// runAgentSplit runs agentetl and returns its stdout alone (for commands
// whose stdout is a JSON document) plus stderr.
func runAgentSplit(t *testing.T, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	p := startAgent(t, timeout, nil, args...)
	code := p.waitExit(t)
	t.Logf("agentetl %s: exit %d after %s\nstderr: %s", strings.Join(args, " "), code, p.elapsed.Round(time.Millisecond), p.stderr.String())
	return code, p.stdout.String(), p.stderr.String()
}
