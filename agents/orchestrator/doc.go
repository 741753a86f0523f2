// Package orchestrator is the coordination half of the seed's Orchestrator
// Service (IOrchestrator): per-agent-type task queues, an agent registry
// with heartbeats and workload, conflict resolution by documented priority
// rules, coordination plans for a pipeline, and notifications on the bus.
//
// It has no Benthos dependency on purpose: the pipeline engine is driven by
// internal/orchestrator, and coordination must be testable and usable by
// agents running in other processes without linking the engine.
//
// # Durability
//
// Every task state change is written to the metadata store (SaveTask)
// before the call that made it returns, and the in-memory queues are only a
// cache rebuilt by Load. A kill -9 therefore loses no task: queued tasks are
// queued again, and running tasks whose agent does not heartbeat within the
// TTL after the restart go back to their queue.
//
// # Task statuses
//
//	waiting     created by a plan, waits for the tasks in its dependsOn
//	queued      ready; taken by priority (highest first), then age
//	running     claimed by an agent (AssignedTo)
//	done        finished successfully
//	failed      finished with an error
//	superseded  replaced by a newer task for the same pipeline and agent
//	            type before it ran (see the conflict rules)
//
// # Bus subjects used for coordination
//
//	agentetl.task.<agentType>   a task was queued for that agent type; remote
//	                            agents wake up and claim it through the API
//	agentetl.decision           every coordination decision (AgentDecision)
package orchestrator
