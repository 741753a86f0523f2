// Command apibench measures the orchestrator API under concurrent clients:
// it starts bin/orchestrator (which spawns bin/agentetl) in a temporary
// directory, creates -pipelines stream pipelines, then has -clients
// goroutines send GET /api/v1/pipelines and reports latency percentiles as
// markdown. With -max-p99 it exits 1 when the p99 is above the bound.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	orchBin := flag.String("orchestrator", "./bin/orchestrator", "orchestrator binary")
	engBin := flag.String("bin", "./bin/agentetl", "agentetl engine binary")
	n := flag.Int("pipelines", 200, "stream pipelines to create")
	clients := flag.Int("clients", 50, "concurrent clients")
	each := flag.Int("requests", 40, "requests per client")
	out := flag.String("out", "", "also write the markdown report here")
	maxP99 := flag.Duration("max-p99", 0, "fail when the p99 is above this (0: report only)")
	flag.Parse()
	if err := run(*orchBin, *engBin, *n, *clients, *each, *out, *maxP99); err != nil {
		slog.Error("apibench failed", "err", err)
		os.Exit(1)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func run(orchBin, engBin string, n, clients, each int, out string, maxP99 time.Duration) error {
	dir, err := os.MkdirTemp("", "apibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	api, err := freePort()
	if err != nil {
		return err
	}
	busPort, err := freePort()
	if err != nil {
		return err
	}
	engAbs, err := filepath.Abs(engBin)
	if err != nil {
		return err
	}
	token := "apibench-token"
	cmd := exec.Command(orchBin, "--listen", "127.0.0.1:"+strconv.Itoa(api), "--bus-port", strconv.Itoa(busPort),
		"--data-dir", filepath.Join(dir, "data"), "--store", "sqlite://"+filepath.Join(dir, "data", "meta.db"),
		"--configs-dir", filepath.Join(dir, "configs"), "--engine-bin", engAbs, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "AGENTETL_TOKEN="+token)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start orchestrator: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(api)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("orchestrator not ready:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	do := func(method, path string, body []byte) (int, error) {
		req, err := http.NewRequestWithContext(context.Background(), method, base+path, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("bench-%04d", i)
		b, _ := json.Marshal(map[string]any{"id": id, "name": id, "type": "stream",
			"source":      map[string]any{"type": "nats", "topic": "agentetl.bench." + id},
			"destination": map[string]any{"type": "nats", "topic": "agentetl.bench." + id + ".out"}})
		code, err := do("POST", "/api/v1/pipelines", b)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("create %s: %d %v", id, code, err)
		}
	}
	created := time.Since(start)
	for i := 0; i < 20; i++ { // warm-up
		if _, err := do("GET", "/api/v1/pipelines", nil); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	var firstErr error
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				st := time.Now()
				code, err := do("GET", "/api/v1/pipelines", nil)
				d := time.Since(st)
				mu.Lock()
				if (err != nil || code != http.StatusOK) && firstErr == nil {
					firstErr = fmt.Errorf("GET /api/v1/pipelines: %d %v", code, err)
				}
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	var md bytes.Buffer
	fmt.Fprintf(&md, "## Orchestrator API latency\n\n")
	fmt.Fprintf(&md, "%d stream pipelines managed (created through the API in %s), %d concurrent clients x %d requests of `GET /api/v1/pipelines`, client and server on the same %d-CPU machine.\n\n",
		n, created.Round(time.Millisecond), clients, each, runtime.NumCPU())
	fmt.Fprintf(&md, "| p50 | p95 | p99 | max |\n|---|---|---|---|\n| %s | %s | %s | %s |\n",
		ms(pct(0.50)), ms(pct(0.95)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	// Read by bench/cmd/bench into its summary table.
	fmt.Fprintf(&md, "\n<!-- summary: API GET /api/v1/pipelines p99, %d pipelines, %d clients | %s | - | - | < 50 ms | %t -->\n",
		n, clients, ms(pct(0.99)), pct(0.99) < 50*time.Millisecond)
	fmt.Print(md.String())
	if out != "" {
		if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if maxP99 > 0 && pct(0.99) > maxP99 {
		return fmt.Errorf("p99 %s is above %s", pct(0.99), maxP99)
	}
	return nil
}
