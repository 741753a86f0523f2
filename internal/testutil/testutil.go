// Package testutil holds small helpers shared by tests that run real
// processes and servers: a buffer that child processes may write while the
// test reads it, a free loopback port, and the binaries under test.
package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Buffer is a bytes.Buffer safe for one writer goroutine (os/exec's copier,
// a logger) and concurrent readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreePort returns a loopback TCP port that was free a moment ago. The
// listener is closed before returning because the caller's server binds the
// port itself; the race window is tiny and acceptable in tests.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// ModuleRoot returns the directory holding go.mod, looking up from the
// working directory (a test's package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary returns the binary the environment variable env names (make test
// sets AGENTETL_BINARY and ORCHESTRATOR_BINARY to the ones it built), or
// builds pkg (such as ./cmd/agentetl) into dir/name.
func Binary(dir, env, pkg, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		return abs, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	fmt.Fprintf(os.Stderr, "built %s in %s\n", name, time.Since(start).Round(time.Millisecond))
	return out, nil
}

// Binaries returns the engine and orchestrator binaries under test (see
// Binary), building missing ones into a temporary directory that cleanup
// removes.
func Binaries() (agent, orch string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "agentetl-bin-")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	if agent, err = Binary(dir, "AGENTETL_BINARY", "./cmd/agentetl", "agentetl"); err == nil {
		orch, err = Binary(dir, "ORCHESTRATOR_BINARY", "./cmd/orchestrator", "orchestrator")
	}
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	return agent, orch, cleanup, nil
}
