package orchestrator

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

// Task statuses; see the package documentation.
const (
	StatusWaiting    = "waiting"
	StatusQueued     = "queued"
	StatusRunning    = "running"
	StatusDone       = "done"
	StatusFailed     = "failed"
	StatusSuperseded = "superseded"
)

// OrchestratorID is the AgentID of decisions the orchestrator itself takes.
const OrchestratorID = "orchestrator"

// SubjectTask is the prefix of the task wake-up subjects; the agent type
// follows: agentetl.task.mapping.
const SubjectTask = "agentetl.task"

// Errors returned by the coordinator.
var (
	ErrUnknownAgentType = errors.New("orchestrator: unknown agent type")
	ErrNotAssigned      = errors.New("orchestrator: task is not running on that agent")
	ErrNoAgent          = errors.New("orchestrator: agent is not registered")
	ErrInvalidTask      = errors.New("orchestrator: invalid task")
)

// AgentTypes lists the agent types that have a task queue.
var AgentTypes = []model.AgentType{model.AgentDiscovery, model.AgentMapping, model.AgentResolution}

// ValidAgentType reports whether t has a task queue.
func ValidAgentType(t model.AgentType) bool {
	for _, a := range AgentTypes {
		if a == t {
			return true
		}
	}
	return false
}

// Publisher is the part of the bus that notifications need; *bus.Bus
// implements it.
type Publisher interface {
	Publish(ctx context.Context, ev bus.Event) error
}

// Observer receives counts for metrics. Every method must be cheap and safe
// for concurrent use; nil disables observation.
type Observer interface {
	TaskQueued(agentType model.AgentType)
	TaskFinished(agentType model.AgentType, status string)
	Decision(action string)
	Conflict(kind, rule string)
}

// Options configure a Coordinator.
type Options struct {
	Store metastore.Store
	// Bus may be nil: notifications are then logged and dropped.
	Bus    Publisher
	Logger *slog.Logger
	// HeartbeatTTL is how long an agent stays available without a
	// heartbeat, and how long a running task survives its agent's silence
	// before going back to the queue. Default 30s.
	HeartbeatTTL time.Duration
	Observer     Observer
	// ConflictRule is an optional CEL expression that overrides the
	// built-in ordering of conflict proposals; see ResolveConflict.
	ConflictRule string
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// Coordinator implements the seed's IOrchestrator coordination methods.
// Safe for concurrent use; one Coordinator per metadata store (it is the
// only writer of task state, which is what makes a claim exclusive).
type Coordinator struct {
	store    metastore.Store
	bus      Publisher
	log      *slog.Logger
	ttl      time.Duration
	obs      Observer
	now      func() time.Time
	rule     *celRule
	loadedAt time.Time

	mu     sync.Mutex
	tasks  map[string]*model.Task // every non-final task by id
	queues map[model.AgentType]*taskHeap
	agents map[string]*AgentInfo
	wake   map[model.AgentType]chan struct{}
	counts map[model.AgentType]*counters
	// given marks direct assignments already handed to a RunWorker loop.
	given map[string]bool
	// sourceIDOf names a pipeline's source as discovery does (see
	// SetSourceResolver); nil matches schema changes by table alone.
	sourceIDOf func(model.PipelineConfig) string
}

// SetSourceResolver tells the coordinator how to name a pipeline's source
// the way discovery names the source of a schema change (its SourceID).
// With it, a change reaches only the pipelines that read that table from
// that source; two databases with a table of the same name stay apart. The
// resolver returns "" when it cannot tell, and the table alone decides.
func (c *Coordinator) SetSourceResolver(f func(model.PipelineConfig) string) {
	c.mu.Lock()
	c.sourceIDOf = f
	c.mu.Unlock()
}

type counters struct{ done, failed, superseded int64 }

// New builds a coordinator. Call Load before use.
func New(o Options) (*Coordinator, error) {
	if o.Store == nil {
		return nil, errors.New("orchestrator: no metadata store")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HeartbeatTTL <= 0 {
		o.HeartbeatTTL = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Coordinator{
		store: o.Store, bus: o.Bus, log: o.Logger.With("component", "coordinator"),
		ttl: o.HeartbeatTTL, obs: o.Observer, now: o.Now,
		tasks:  map[string]*model.Task{},
		queues: map[model.AgentType]*taskHeap{},
		agents: map[string]*AgentInfo{},
		wake:   map[model.AgentType]chan struct{}{},
		counts: map[model.AgentType]*counters{},
	}
	for _, t := range AgentTypes {
		c.queues[t] = &taskHeap{}
		c.wake[t] = make(chan struct{})
		c.counts[t] = &counters{}
	}
	if o.ConflictRule != "" {
		r, err := compileRule(o.ConflictRule)
		if err != nil {
			return nil, err
		}
		c.rule = r
	}
	return c, nil
}

// Load rebuilds the queues from the metadata store. Tasks that were
// running keep their agent; if that agent does not heartbeat within the
// TTL, Reap puts them back in the queue.
func (c *Coordinator) Load(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadedAt = c.now()
	for _, st := range []string{StatusQueued, StatusRunning, StatusWaiting} {
		ts, err := c.store.ListTasks(ctx, metastore.TaskFilter{Status: st})
		if err != nil {
			return fmt.Errorf("orchestrator: load %s tasks: %w", st, err)
		}
		for i := range ts {
			t := ts[i]
			at := model.AgentType(t.Type)
			if !ValidAgentType(at) {
				c.log.Warn("ignoring stored task of unknown type", "task", t.ID, "type", t.Type)
				continue
			}
			c.tasks[t.ID] = &t
			if st == StatusQueued {
				heap.Push(c.queues[at], &t)
			}
		}
	}
	c.log.Info("task queues loaded", "tasks", len(c.tasks))
	return nil
}

// ---- queue ----

// taskHeap orders tasks by priority (highest first), then age (oldest
// first), then id, so the order is total and stable across restarts.
type taskHeap []*model.Task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(*model.Task)) }
func (h *taskHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	*h = old[:n-1]
	return t
}

func (h *taskHeap) remove(id string) {
	for i, t := range *h {
		if t.ID == id {
			heap.Remove(h, i)
			return
		}
	}
}

// Envelope holds the payload fields the coordinator itself reads. Agents
// read their own fields from the same JSON object.
type Envelope struct {
	PipelineID string   `json:"pipelineId,omitempty"`
	DependsOn  []string `json:"dependsOn,omitempty"`
	// Key identifies what the task is about (a table, a pipeline); a new
	// task with the same type and key supersedes a queued one.
	Key string `json:"key,omitempty"`
}

// ParseEnvelope reads the envelope fields of a task payload. A payload that
// is not a JSON object has an empty envelope.
func ParseEnvelope(p json.RawMessage) Envelope {
	var e Envelope
	if len(p) > 0 {
		_ = json.Unmarshal(p, &e)
	}
	return e
}

// TaskAssignment is the answer of AssignTask.
type TaskAssignment struct {
	Task model.Task `json:"task"`
	// AgentID is set when an available agent got the task at once.
	AgentID string `json:"agentId,omitempty"`
	// Status is "assigned" or "queued" (or "waiting" for dependencies).
	Status string `json:"status"`
	// Position is the 0-based queue position when queued.
	Position int `json:"position"`
	// Superseded lists queued tasks this one replaced.
	Superseded []string `json:"superseded,omitempty"`
}

// AssignTask puts task on agentType's queue, or hands it at once to the
// least loaded available in-process agent of that type. A task whose
// dependencies are not all done waits. A queued task of the same type and
// envelope key is superseded (rule: the newest information wins before
// work starts); a running one is left to finish and the new task waits for
// it, so two agents never work on the same thing at once.
func (c *Coordinator) AssignTask(ctx context.Context, task model.Task, agentType model.AgentType) (TaskAssignment, error) {
	if !ValidAgentType(agentType) {
		return TaskAssignment{}, fmt.Errorf("%w: %q (want one of %s)", ErrUnknownAgentType, agentType, agentTypeList())
	}
	if task.Type != "" && task.Type != string(agentType) {
		return TaskAssignment{}, fmt.Errorf("%w: task type %q does not match agent type %q", ErrInvalidTask, task.Type, agentType)
	}
	if len(task.Payload) > 0 && !json.Valid(task.Payload) {
		return TaskAssignment{}, fmt.Errorf("%w: payload is not valid JSON", ErrInvalidTask)
	}
	task.Type = string(agentType)
	if task.ID == "" {
		task.ID = uuid.NewString()
	} else if old, err := c.store.GetTask(ctx, task.ID); err == nil {
		// A caller-chosen id makes submission idempotent: a redelivered
		// event must not re-open a task that already finished.
		return TaskAssignment{Task: old}, fmt.Errorf("%w: task %s already exists with status %s", ErrInvalidTask, task.ID, old.Status)
	} else if !errors.Is(err, metastore.ErrNotFound) {
		return TaskAssignment{}, fmt.Errorf("orchestrator: look up task %s: %w", task.ID, err)
	}
	now := c.now().UTC()
	if task.CreatedAt.IsZero() {
		task.CreatedAt = now
	}
	task.UpdatedAt = now
	task.AssignedTo = ""
	env := ParseEnvelope(task.Payload)

	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.tasks[task.ID]; ok {
		return TaskAssignment{}, fmt.Errorf("%w: task %s already exists with status %s", ErrInvalidTask, task.ID, old.Status)
	}
	var asg TaskAssignment
	var reasons []string
	// Supersede or wait for work on the same key.
	if env.Key != "" {
		for _, o := range c.sortedTasks() {
			if o.Type != task.Type || ParseEnvelope(o.Payload).Key != env.Key {
				continue
			}
			switch o.Status {
			case StatusQueued, StatusWaiting:
				if err := c.finishLocked(ctx, o, StatusSuperseded); err != nil {
					return TaskAssignment{}, err
				}
				asg.Superseded = append(asg.Superseded, o.ID)
				reasons = append(reasons, fmt.Sprintf("superseded %s task %s for %q: a newer task carries fresher input and the old one had not started", o.Type, o.ID, env.Key))
			case StatusRunning:
				env.DependsOn = append(env.DependsOn, o.ID)
				reasons = append(reasons, fmt.Sprintf("waits for running task %s on %q so two agents never change the same thing at once", o.ID, env.Key))
			}
		}
		if len(env.DependsOn) > len(ParseEnvelope(task.Payload).DependsOn) {
			task.Payload = withDependsOn(task.Payload, env.DependsOn)
		}
	}
	task.Status = StatusQueued
	if !c.depsDoneLocked(env.DependsOn) {
		task.Status = StatusWaiting
	}
	// Hand it straight to an idle in-process agent when there is one.
	if task.Status == StatusQueued {
		if a := c.pickAgentLocked(agentType); a != nil && len(*c.queues[agentType]) == 0 {
			task.Status, task.AssignedTo = StatusRunning, a.ID
		}
	}
	if err := c.store.SaveTask(ctx, task); err != nil {
		return TaskAssignment{}, fmt.Errorf("orchestrator: save task %s: %w", task.ID, err)
	}
	t := task
	c.tasks[t.ID] = &t
	switch t.Status {
	case StatusQueued:
		heap.Push(c.queues[agentType], &t)
		asg.Status = "queued"
		asg.Position = c.positionLocked(agentType, t.ID)
		c.signalLocked(agentType)
		reasons = append(reasons, fmt.Sprintf("queued at position %d of the %s queue (priority %d; no idle %s agent)", asg.Position, agentType, t.Priority, agentType))
	case StatusWaiting:
		asg.Status = "waiting"
		reasons = append(reasons, fmt.Sprintf("waits for %s", strings.Join(env.DependsOn, ", ")))
	case StatusRunning:
		asg.Status, asg.AgentID = "assigned", t.AssignedTo
		c.agents[t.AssignedTo].Running++
		c.signalLocked(agentType)
		reasons = append(reasons, fmt.Sprintf("assigned to %s, the least loaded available %s agent", t.AssignedTo, agentType))
	}
	asg.Task = t
	if c.obs != nil {
		c.obs.TaskQueued(agentType)
	}
	c.decideLocked(ctx, "assign_task", t.ID, env.PipelineID, 1, strings.Join(reasons, "; "), asg.Status)
	go c.notifyTask(t)
	return asg, nil
}

func withDependsOn(p json.RawMessage, deps []string) json.RawMessage {
	m := map[string]any{}
	if len(p) > 0 {
		if err := json.Unmarshal(p, &m); err != nil {
			return p
		}
	}
	m["dependsOn"] = deps
	b, err := json.Marshal(m)
	if err != nil {
		return p
	}
	return b
}

func agentTypeList() string {
	s := make([]string, len(AgentTypes))
	for i, t := range AgentTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// sortedTasks returns the live tasks in id order so decisions are
// deterministic.
func (c *Coordinator) sortedTasks() []*model.Task {
	out := make([]*model.Task, 0, len(c.tasks))
	for _, t := range c.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (c *Coordinator) depsDoneLocked(deps []string) bool {
	for _, d := range deps {
		if t, ok := c.tasks[d]; ok && !final(t.Status) {
			return false
		}
	}
	return true
}

func final(status string) bool {
	return status == StatusDone || status == StatusFailed || status == StatusSuperseded
}

func (c *Coordinator) positionLocked(at model.AgentType, id string) int {
	h := append(taskHeap(nil), *c.queues[at]...)
	sort.Sort(h)
	for i, t := range h {
		if t.ID == id {
			return i
		}
	}
	return -1
}

func (c *Coordinator) signalLocked(at model.AgentType) {
	close(c.wake[at])
	c.wake[at] = make(chan struct{})
}

// notifyTask wakes remote agents of the task's type. Best effort: a remote
// agent also polls, so a lost wake-up only delays it.
func (c *Coordinator) notifyTask(t model.Task) {
	if c.bus == nil {
		return
	}
	ev, err := bus.NewEvent(SubjectTask+"."+t.Type, "task."+t.Status, map[string]any{
		"taskId": t.ID, "type": t.Type, "priority": t.Priority, "status": t.Status, "assignedTo": t.AssignedTo,
	})
	if err != nil {
		return
	}
	ev.PipelineID = ParseEnvelope(t.Payload).PipelineID
	ev.Source = OrchestratorID
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.bus.Publish(ctx, ev); err != nil {
		c.log.Warn("task notification not published", "task", t.ID, "err", err)
	}
}

// Claim gives agentID the next task of its type, by priority then age.
// ok is false when the queue is empty.
func (c *Coordinator) Claim(ctx context.Context, agentID string) (model.Task, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, found := c.agents[agentID]
	if !found {
		return model.Task{}, false, fmt.Errorf("%w: %s", ErrNoAgent, agentID)
	}
	a.LastHeartbeat = c.now().UTC()
	q := c.queues[a.Type]
	if q.Len() == 0 {
		return model.Task{}, false, nil
	}
	t := heap.Pop(q).(*model.Task)
	prev := *t
	t.Status, t.AssignedTo, t.UpdatedAt = StatusRunning, agentID, c.now().UTC()
	if err := c.store.SaveTask(ctx, *t); err != nil {
		*t = prev
		heap.Push(q, t)
		return model.Task{}, false, fmt.Errorf("orchestrator: claim task %s: %w", t.ID, err)
	}
	a.Running++
	// Claimed means handed over: RunWorker must not pick it up again as
	// a direct assignment.
	c.markHandedOver(t.ID)
	return *t, true, nil
}

// TaskResult is what an agent reports when a task ends.
type TaskResult struct {
	// Error, when set, fails the task.
	Error string `json:"error,omitempty"`
	// Outcome is a short description recorded with the decision.
	Outcome    string  `json:"outcome,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	Reasoning  string  `json:"reasoning,omitempty"`
	Action     string  `json:"action,omitempty"`
}

// Complete records the end of a running task. Only the agent that claimed
// it may complete it. Tasks waiting for it are released.
func (c *Coordinator) Complete(ctx context.Context, taskID, agentID string, res TaskResult) (model.Task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tasks[taskID]
	if !ok || t.Status != StatusRunning || t.AssignedTo != agentID {
		return model.Task{}, fmt.Errorf("%w: %s on %s", ErrNotAssigned, taskID, agentID)
	}
	status := StatusDone
	if res.Error != "" {
		status = StatusFailed
	}
	if err := c.finishLocked(ctx, t, status); err != nil {
		return model.Task{}, err
	}
	if a, ok := c.agents[agentID]; ok {
		a.Running = max(0, a.Running-1)
		a.LastHeartbeat = c.now().UTC()
		if status == StatusDone {
			a.Done++
		} else {
			a.Failed++
		}
	}
	// The agent's own decision, so that /decisions shows every step.
	if a, ok := c.agents[agentID]; ok {
		action := res.Action
		if action == "" {
			action = "complete_task"
		}
		reason := res.Reasoning
		if res.Error != "" {
			reason = strings.TrimSpace(reason + " error: " + res.Error)
		}
		if reason == "" {
			reason = fmt.Sprintf("%s agent %s finished %s task %s without giving its reasoning", a.Type, agentID, t.Type, taskID)
		}
		d := model.AgentDecision{
			AgentID: agentID, AgentType: a.Type, TaskID: taskID, PipelineID: ParseEnvelope(t.Payload).PipelineID,
			Action: action, Confidence: res.Confidence, Reasoning: reason, Outcome: firstNonEmpty(res.Outcome, status),
		}
		c.saveDecisionLocked(ctx, d)
	}
	c.releaseWaitingLocked(ctx)
	return *t, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// finishLocked moves t to a final status, persists it and forgets it.
func (c *Coordinator) finishLocked(ctx context.Context, t *model.Task, status string) error {
	prev := *t
	t.Status, t.UpdatedAt = status, c.now().UTC()
	if err := c.store.SaveTask(ctx, *t); err != nil {
		*t = prev
		return fmt.Errorf("orchestrator: save task %s: %w", t.ID, err)
	}
	at := model.AgentType(t.Type)
	if prev.Status == StatusQueued {
		c.queues[at].remove(t.ID)
	}
	delete(c.tasks, t.ID)
	delete(c.given, t.ID)
	if cnt := c.counts[at]; cnt != nil {
		switch status {
		case StatusDone:
			cnt.done++
		case StatusFailed:
			cnt.failed++
		case StatusSuperseded:
			cnt.superseded++
		}
	}
	if c.obs != nil {
		c.obs.TaskFinished(at, status)
	}
	return nil
}

// releaseWaitingLocked queues waiting tasks whose dependencies are done.
func (c *Coordinator) releaseWaitingLocked(ctx context.Context) {
	for _, t := range c.sortedTasks() {
		if t.Status != StatusWaiting || !c.depsDoneLocked(ParseEnvelope(t.Payload).DependsOn) {
			continue
		}
		t.Status, t.UpdatedAt = StatusQueued, c.now().UTC()
		if err := c.store.SaveTask(ctx, *t); err != nil {
			t.Status = StatusWaiting
			c.log.Error("releasing waiting task failed", "task", t.ID, "err", err)
			continue
		}
		at := model.AgentType(t.Type)
		heap.Push(c.queues[at], t)
		c.signalLocked(at)
		go c.notifyTask(*t)
	}
}

// Reap returns running tasks whose agent has been silent longer than the
// TTL to the head of their queue, and marks silent agents offline. After a
// restart, agents get one TTL to heartbeat before their tasks are taken.
func (c *Coordinator) Reap(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UTC()
	for _, a := range c.agents {
		if now.Sub(a.LastHeartbeat) > c.ttl {
			a.Online = false
		}
	}
	n := 0
	for _, t := range c.sortedTasks() {
		if t.Status != StatusRunning {
			continue
		}
		a, ok := c.agents[t.AssignedTo]
		alive := ok && a.Online
		if alive || (!ok && now.Sub(c.loadedAt) <= c.ttl) {
			continue
		}
		prevAgent := t.AssignedTo
		t.Status, t.AssignedTo, t.UpdatedAt = StatusQueued, "", now
		if err := c.store.SaveTask(ctx, *t); err != nil {
			t.Status, t.AssignedTo = StatusRunning, prevAgent
			return n, fmt.Errorf("orchestrator: requeue task %s: %w", t.ID, err)
		}
		delete(c.given, t.ID)
		if ok {
			a.Running = max(0, a.Running-1)
		}
		at := model.AgentType(t.Type)
		heap.Push(c.queues[at], t)
		c.signalLocked(at)
		n++
		c.decideLocked(ctx, "requeue_task", t.ID, ParseEnvelope(t.Payload).PipelineID, 1,
			fmt.Sprintf("agent %s sent no heartbeat for more than %s; the task goes back to the %s queue", prevAgent, c.ttl, at), StatusQueued)
	}
	return n, nil
}

// Tasks lists live (not final) tasks of one type, or all types when empty,
// in queue order.
func (c *Coordinator) Tasks(agentType model.AgentType) []model.Task {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []model.Task
	for _, t := range c.tasks {
		if agentType == "" || t.Type == string(agentType) {
			out = append(out, *t)
		}
	}
	h := make(taskHeap, len(out))
	for i := range out {
		h[i] = &out[i]
	}
	sort.Sort(h)
	res := make([]model.Task, len(h))
	for i, t := range h {
		res[i] = *t
	}
	return res
}

// Wait returns a channel closed when a task of agentType is queued.
func (c *Coordinator) Wait(agentType model.AgentType) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.wake[agentType]; ok {
		return ch
	}
	ch := make(chan struct{})
	return ch
}

// ---- decisions ----

func (c *Coordinator) decideLocked(ctx context.Context, action, taskID, pipelineID string, confidence float64, reasoning, outcome string) {
	c.saveDecisionLocked(ctx, model.AgentDecision{
		AgentID: OrchestratorID, AgentType: model.AgentOrchestrator, TaskID: taskID, PipelineID: pipelineID,
		Action: action, Confidence: confidence, Reasoning: reasoning, Outcome: outcome,
	})
}

// RecordDecision stores a decision and publishes it on the bus. The
// pipeline lifecycle uses it so that every step shows up in one audit log.
func (c *Coordinator) RecordDecision(ctx context.Context, d model.AgentDecision) model.AgentDecision {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveDecisionLocked(ctx, d)
}

func (c *Coordinator) saveDecisionLocked(ctx context.Context, d model.AgentDecision) model.AgentDecision {
	if d.ID == "" {
		d.ID = uuid.NewString()
	}
	if d.Timestamp.IsZero() {
		d.Timestamp = c.now().UTC()
	}
	if d.AgentID == "" {
		d.AgentID, d.AgentType = OrchestratorID, model.AgentOrchestrator
	}
	if err := c.store.SaveAgentDecision(ctx, d); err != nil {
		// A decision that cannot be recorded is logged in full instead:
		// the audit trail must not silently lose it.
		c.log.Error("decision not stored", "action", d.Action, "task", d.TaskID, "pipeline", d.PipelineID, "reasoning", d.Reasoning, "err", err)
	}
	if c.obs != nil {
		c.obs.Decision(d.Action)
	}
	if c.bus != nil {
		go func(d model.AgentDecision) {
			ev, err := bus.NewEvent(bus.SubjectDecision, "decision."+d.Action, d)
			if err != nil {
				return
			}
			ev.ID = "decision-" + d.ID
			ev.PipelineID, ev.Source = d.PipelineID, d.AgentID
			pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := c.bus.Publish(pctx, ev); err != nil {
				c.log.Warn("decision not published", "decision", d.ID, "err", err)
			}
		}(d)
	}
	return d
}

// NotifyAgents publishes ev on the bus. Without a bus it fails, so callers
// know nobody was told.
func (c *Coordinator) NotifyAgents(ctx context.Context, ev bus.Event) error {
	if c.bus == nil {
		return errors.New("orchestrator: no bus configured")
	}
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.Source == "" {
		ev.Source = OrchestratorID
	}
	if err := c.bus.Publish(ctx, ev); err != nil {
		return fmt.Errorf("orchestrator: notify agents on %s: %w", ev.Subject, err)
	}
	return nil
}
