// Package testutil holds small helpers shared by tests that run real
// processes and servers: a buffer that child processes may write while the
// test reads it, and a free loopback port.
package testutil

import (
	"bytes"
	"net"
	"sync"
	"testing"

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
