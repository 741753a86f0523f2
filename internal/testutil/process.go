package testutil

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ChildPID finds a live child of parent whose command name is comm, through
// /proc (Linux).
func ChildPID(parent int, comm string) (int, bool) {
	if len(comm) > 15 {
		comm = comm[:15] // the kernel truncates comm
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		st := string(b)
		open, end := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || end < 0 {
			continue
		}
		fields := strings.Fields(st[end+1:])
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == parent && st[open+1:end] == comm {
			return pid, true
		}
	}
	return 0, false
}

// Alive reports whether pid is a live (non-zombie) process.
func Alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(st[i+1:]), "Z")
}

// WaitReady polls url (an orchestrator's /readyz) until it answers 200. It
// fails the test when done is closed first (the process exited) or timeout
// passes; output gives the process's log for the message.
func WaitReady(t testing.TB, hc *http.Client, url string, done <-chan struct{}, timeout time.Duration, output func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-done:
			require.FailNow(t, "orchestrator exited during start", output())
		default:
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "orchestrator not ready within %s\n%s", timeout, output())
		time.Sleep(50 * time.Millisecond)
	}
}
