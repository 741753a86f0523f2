package orchestrator_test

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUpdateRestartsOnlyThatStream manages many stream pipelines at once
// (200 by default; ORCH_SCALE_PIPELINES overrides), updates one, and
// checks that only its stream restarted: every other stream's uptime kept
// growing. It also measures GET /api/v1/pipelines latency at 50 concurrent
// clients.
func TestUpdateRestartsOnlyThatStream(t *testing.T) {
	n := 200
	if v := os.Getenv("ORCH_SCALE_PIPELINES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	s := newSite(t, nil)
	s.start(t)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			s.mustCall(t, http.StatusCreated, "POST", "/api/v1/pipelines", streamPipeline(fmt.Sprintf("p%03d", i)), nil)
		}(i)
	}
	wg.Wait()
	t.Logf("created %d stream pipelines in %s", n, time.Since(start).Round(time.Millisecond))

	uptimes := func() map[string]float64 {
		out := map[string]float64{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(id string) {
				defer wg.Done()
				defer func() { <-sem }()
				var pv pipelineView
				s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+id, nil, &pv)
				if pv.Engine != nil && pv.Engine.Present && pv.Engine.Active {
					mu.Lock()
					out[id] = pv.Engine.Uptime
					mu.Unlock()
				}
			}(fmt.Sprintf("p%03d", i))
		}
		wg.Wait()
		return out
	}
	before := uptimes()
	require.Len(t, before, n, "every pipeline runs as its own stream")

	// p-latency of the list endpoint with 50 concurrent clients.
	lat := measureList(t, s, 50, 20)
	t.Logf("GET /api/v1/pipelines with %d pipelines, 50 clients x 20 requests: p50 %s p99 %s max %s",
		n, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])

	target := fmt.Sprintf("p%03d", n/2)
	var pv pipelineView
	s.mustCall(t, http.StatusOK, "GET", "/api/v1/pipelines/"+target, nil, &pv)
	upd := streamPipeline(target)
	upd["destination"] = map[string]any{"type": "nats", "topic": "agentetl.test.updated"}
	var after pipelineView
	s.mustCall(t, http.StatusOK, "PUT", "/api/v1/pipelines/"+target, upd, &after, "If-Match", fmt.Sprintf("%q", strconv.Itoa(pv.Version)))
	require.Equal(t, pv.Version+1, after.Version)
	time.Sleep(500 * time.Millisecond)

	now := uptimes()
	require.Len(t, now, n)
	var restarted []string
	for id, up := range now {
		if up < before[id] {
			restarted = append(restarted, id)
		}
	}
	sort.Strings(restarted)
	require.Equal(t, []string{target}, restarted, "only the updated pipeline's stream restarted")
	require.Less(t, now[target], 2.0)
}

func measureList(t *testing.T, s *site, clients, each int) []time.Duration {
	t.Helper()
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				req, _ := http.NewRequest("GET", s.baseURL+"/api/v1/pipelines", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				st := time.Now()
				resp, err := s.httpc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = ioCopy(discard{}, resp)
				resp.Body.Close()
				d := time.Since(st)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d", resp.StatusCode)
				}
				mu.Lock()
				all = append(all, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
