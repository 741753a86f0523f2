package orchestrator

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/agentetl/agentetl/internal/model"
)

// AgentInfo is one registered agent: where it runs, how busy it is and
// when it was last heard from.
type AgentInfo struct {
	ID   string          `json:"id"`
	Type model.AgentType `json:"type"`
	// Capacity is how many tasks the agent runs at once.
	Capacity int `json:"capacity"`
	// Remote agents live in another process and claim tasks through the
	// API; in-process agents are handed tasks directly by AssignTask.
	Remote        bool      `json:"remote"`
	Online        bool      `json:"online"`
	Running       int       `json:"running"`
	Done          int64     `json:"done"`
	Failed        int64     `json:"failed"`
	RegisteredAt  time.Time `json:"registeredAt"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
}

// Available reports whether the agent can take another task.
func (a *AgentInfo) Available() bool { return a.Online && a.Running < a.Capacity }

// Register adds or refreshes an agent. Re-registering keeps its counters,
// which is what an agent does after the orchestrator restarted.
func (c *Coordinator) Register(id string, t model.AgentType, capacity int, remote bool) (AgentInfo, error) {
	if id == "" {
		return AgentInfo{}, fmt.Errorf("%w: empty agent id", ErrInvalidTask)
	}
	if !ValidAgentType(t) {
		return AgentInfo{}, fmt.Errorf("%w: %q (want one of %s)", ErrUnknownAgentType, t, agentTypeList())
	}
	if capacity <= 0 {
		capacity = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UTC()
	a, ok := c.agents[id]
	if !ok {
		a = &AgentInfo{ID: id, RegisteredAt: now}
		c.agents[id] = a
		// Tasks this agent was running before a restart count towards
		// its workload again.
		for _, task := range c.tasks {
			if task.Status == StatusRunning && task.AssignedTo == id {
				a.Running++
			}
		}
	}
	a.Type, a.Capacity, a.Remote, a.Online, a.LastHeartbeat = t, capacity, remote, true, now
	return *a, nil
}

// Heartbeat marks the agent alive.
func (c *Coordinator) Heartbeat(id string) (AgentInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.agents[id]
	if !ok {
		return AgentInfo{}, fmt.Errorf("%w: %s", ErrNoAgent, id)
	}
	a.Online, a.LastHeartbeat = true, c.now().UTC()
	return *a, nil
}

// Deregister removes an agent; its running tasks go back to the queue at
// the next Reap.
func (c *Coordinator) Deregister(ctx context.Context, id string) {
	c.mu.Lock()
	if a, ok := c.agents[id]; ok {
		a.Online = false
		a.LastHeartbeat = time.Time{}
	}
	c.mu.Unlock()
	_, _ = c.Reap(ctx)
}

// Agents lists registered agents by type, then id.
func (c *Coordinator) Agents() []AgentInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UTC()
	out := make([]AgentInfo, 0, len(c.agents))
	for _, a := range c.agents {
		cp := *a
		if now.Sub(cp.LastHeartbeat) > c.ttl {
			cp.Online = false
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// pickAgentLocked returns the least loaded available in-process agent of
// type t (ties: fewest tasks done, then id), or nil. Remote agents pull.
func (c *Coordinator) pickAgentLocked(t model.AgentType) *AgentInfo {
	var best *AgentInfo
	now := c.now().UTC()
	for _, a := range c.agents {
		if a.Type != t || a.Remote || now.Sub(a.LastHeartbeat) > c.ttl || !a.Available() {
			continue
		}
		if best == nil || a.Running < best.Running ||
			(a.Running == best.Running && (a.Done < best.Done || (a.Done == best.Done && a.ID < best.ID))) {
			best = a
		}
	}
	return best
}

// Workload summarises one agent type.
type Workload struct {
	AgentType  model.AgentType `json:"agentType"`
	Queued     int             `json:"queued"`
	Waiting    int             `json:"waiting"`
	Running    int             `json:"running"`
	Done       int64           `json:"done"`
	Failed     int64           `json:"failed"`
	Superseded int64           `json:"superseded"`
	Agents     int             `json:"agents"`
	Online     int             `json:"online"`
	Capacity   int             `json:"capacity"`
}

// Workload returns per-type queue depths and agent counts. Done, Failed
// and Superseded count since this process started.
func (c *Coordinator) Workload() []Workload {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UTC()
	out := make([]Workload, 0, len(AgentTypes))
	for _, t := range AgentTypes {
		w := Workload{AgentType: t, Queued: c.queues[t].Len()}
		for _, task := range c.tasks {
			if task.Type != string(t) {
				continue
			}
			switch task.Status {
			case StatusWaiting:
				w.Waiting++
			case StatusRunning:
				w.Running++
			}
		}
		cnt := c.counts[t]
		w.Done, w.Failed, w.Superseded = cnt.done, cnt.failed, cnt.superseded
		for _, a := range c.agents {
			if a.Type != t {
				continue
			}
			w.Agents++
			if now.Sub(a.LastHeartbeat) <= c.ttl {
				w.Online++
				w.Capacity += a.Capacity
			}
		}
		out = append(out, w)
	}
	return out
}
