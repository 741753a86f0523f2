// Package fault is the fault-injection suite: each test breaks one part of
// a running load on purpose (kill -9 of the engine or the orchestrator, a
// restarted or disconnected PostgreSQL, a restarted NATS server, poison
// records, a source schema change, a full disk under the dead letter, a slow
// destination) and then proves that count(source) = count(target) +
// count(dead letter), that no record had its effect twice, and that the
// target holds exactly the source's content.
//
// The tests run the real binaries (AGENTETL_BINARY and ORCHESTRATOR_BINARY,
// or built once in TestMain) against the PostgreSQL named by PG_DSN. Each
// scenario prints one line, also appended to the summary file named by
// FAULT_SUMMARY (default: agentetl-fault-summary.txt in the temp dir):
//
//	scenario=<name> rows=<n> lost=<n> duplicated=<n> seconds=<s>
//
// The tests live in package fault_test; this file only gives the
// directory a non-test package.
package fault
