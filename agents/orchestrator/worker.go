package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentetl/agentetl/internal/metastore"
	"github.com/agentetl/agentetl/internal/model"
)

// Handler runs one task inside the orchestrator process.
type Handler func(ctx context.Context, t model.Task) (TaskResult, error)

// RunWorker registers an in-process agent and runs its tasks until ctx
// ends: up to capacity at once, heartbeating every TTL/3. A handler error
// fails the task (its message is recorded); a panic does too.
func (c *Coordinator) RunWorker(ctx context.Context, agentID string, t model.AgentType, capacity int, h Handler) error {
	if capacity <= 0 {
		capacity = 1
	}
	if _, err := c.Register(agentID, t, capacity, false); err != nil {
		return err
	}
	defer c.Deregister(context.WithoutCancel(ctx), agentID)
	sem := make(chan struct{}, capacity)
	var wg sync.WaitGroup
	defer wg.Wait()
	hb := time.NewTicker(c.ttl / 3)
	defer hb.Stop()
	for {
		// Tasks AssignTask handed to this agent directly, then the queue.
		task, ok := c.nextAssigned(agentID)
		if !ok {
			var err error
			task, ok, err = c.Claim(ctx, agentID)
			if err != nil {
				if errors.Is(err, ErrNoAgent) {
					if _, err := c.Register(agentID, t, capacity, false); err != nil {
						return err
					}
					continue
				}
				c.log.Error("claim failed", "agent", agentID, "err", err)
			}
		}
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-c.Wait(t):
			case <-hb.C:
				_, _ = c.Heartbeat(agentID)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Add(1)
		go func(task model.Task) {
			defer wg.Done()
			defer func() { <-sem }()
			res := c.runHandler(ctx, h, task)
			// Recorded even when ctx ended, so the outcome is not lost.
			if _, err := c.Complete(context.WithoutCancel(ctx), task.ID, agentID, res); err != nil {
				c.log.Error("complete failed", "agent", agentID, "task", task.ID, "err", err)
			}
		}(task)
	}
}

func (c *Coordinator) runHandler(ctx context.Context, h Handler, t model.Task) (res TaskResult) {
	defer func() {
		if r := recover(); r != nil {
			res = TaskResult{Error: fmt.Sprintf("agent panicked: %v", r)}
		}
	}()
	res, err := h(ctx, t)
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// nextAssigned returns a running task assigned to agentID that its worker
// has not picked up yet (AssignTask hands tasks over directly).
func (c *Coordinator) nextAssigned(agentID string) (model.Task, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.sortedTasks() {
		if t.Status == StatusRunning && t.AssignedTo == agentID && !c.handedOver(t.ID) {
			c.markHandedOver(t.ID)
			return *t, true
		}
	}
	return model.Task{}, false
}

// handedOver tracks direct assignments already given to a worker. It lives
// in the task map's shadow so a restart (which empties it) hands running
// tasks to their re-registered worker again: at-least-once, like the bus.
func (c *Coordinator) handedOver(id string) bool {
	if c.given == nil {
		return false
	}
	return c.given[id]
}

func (c *Coordinator) markHandedOver(id string) {
	if c.given == nil {
		c.given = map[string]bool{}
	}
	c.given[id] = true
}

// StoreDeduper is a durable bus.Deduper on the metadata store: a handled
// event leaves a checkpoint "event:<consumer>:<event id>", so a consumer
// restarted after kill -9 acknowledges redelivered events it had already
// handled without handling them again.
type StoreDeduper struct {
	Store metastore.Store
}

func dedupeKey(consumer, id string) string { return "event:" + consumer + ":" + id }

// Seen implements bus.Deduper.
func (d StoreDeduper) Seen(ctx context.Context, consumer, id string) (bool, error) {
	_, err := d.Store.GetCheckpoint(ctx, dedupeKey(consumer, id))
	if errors.Is(err, metastore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("orchestrator: dedupe lookup: %w", err)
	}
	return true, nil
}

// Mark implements bus.Deduper.
func (d StoreDeduper) Mark(ctx context.Context, consumer, id string) error {
	if err := d.Store.SaveCheckpoint(ctx, dedupeKey(consumer, id), time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("orchestrator: dedupe mark: %w", err)
	}
	return nil
}
