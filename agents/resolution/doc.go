// Package resolution is the Error Resolution Agent: it captures pipeline
// errors, classifies and fingerprints them, diagnoses them from structured
// evidence, user rules and history, and resolves them (retry, skip to a dead
// letter, adjust the configuration, escalate). It has no Benthos import; the
// error_resolution processor and output (plugins/resolution) and the
// `agentetl diagnose` and `agentetl dlq replay` commands are thin layers
// over it.
//
// # Seed interface
//
//	CaptureError(PipelineError) → ErrorRecord     Agent.CaptureError, Agent.CaptureGoError
//	DiagnoseError(ErrorRecord) → Diagnosis        Agent.DiagnoseError (Agent.Diagnose: without similar errors)
//	ResolveError(Diagnosis) → Resolution          Agent.ResolveError
//	EscalateError(ErrorRecord) → Escalation       Agent.EscalateError
//
// # Taxonomy
//
//	connection      refused, reset, terminated, too many connections        transient  retry
//	timeout         statement_timeout (57014), deadlines, i/o timeouts      transient  retry
//	rate_limit      429, quotas, throttling                                 transient  retry
//	conflict        serialization failure, deadlock, lock timeout           transient  retry
//	authentication  bad password (28xxx), SASL                                         escalate
//	permission      insufficient privilege (42501), ACLs                               escalate
//	schema          missing table or column, drift (42P01, 42703)                      escalate
//	data_type       invalid value for type, too long, overflow, bad date    per record skip
//	constraint      not null, unique, foreign key, check (23xxx)            per record skip
//	poison          unparseable payload (JSON, bad encoding)                per record skip
//	resource        disk full, message too large, out of memory                        adjust_config or escalate
//	configuration   unknown database, syntax, bad host or certificate                  escalate
//	unknown         nothing matched                                                    escalate
//
// Classify reads structured evidence first: the SQLSTATE of a
// *pgconn.PgError or *pgutil.Error (and the COPY line or encoder record
// that names the failing row), MySQL error numbers (*mysql.MySQLError and
// the driver's sentinel errors), Kafka protocol error names (as franz-go's
// kerr prints them), net and context errors and JSON decoding errors. Only
// then does it match message patterns, ordered specific-first.
//
// # Fingerprints and history
//
// Template replaces quoted values and identifiers, numbers, UUIDs,
// timestamps, addresses and URLs with placeholders; Fingerprint is a short
// hash of the category and the template. The metadata store keeps, per
// fingerprint, the counts, first and last seen, and each strategy's
// attempts and successes (metastore.FingerprintStats). A fingerprint whose
// retries never succeeded (Config.RetryGiveUp resolutions, default 3) is no
// longer retried.
//
// # Rules
//
// Users add rules in CEL, evaluated before the built-in strategy, e.g.
// `error.sqlstate.startsWith("23") && record.country == "US"` → skip.
// CompileRules reports every invalid rule with the line and column of the
// problem in its expression.
//
// # Delivering batches: Engine
//
// Engine.Deliver writes a batch through a write function (one
// all-or-nothing unit per call) and resolves failures:
//
//   - transient errors are retried with exponential backoff and jitter,
//     bounded by attempts and total time (RetryPolicy);
//   - a transient error that outlasts the budget is probed by bisection
//     without retries: if every part fails it is an outage and the batch is
//     handed back for redelivery (nothing dead-lettered); a single record
//     that keeps failing while its neighbours succeed is poison and is set
//     aside, so it never blocks the records behind it for longer than the
//     budget;
//   - record-level errors (data_type, constraint, poison) are isolated: the
//     record the error names (a COPY line) is set aside directly, otherwise
//     the failing window is halved, an O(k log n) search; good records
//     commit, only bad ones go to the dead letter;
//   - allowed adjustments that fit the error (coerce, truncate,
//     null_invalid_date, shrink_batch, add_nullable_column) are learned,
//     recorded and applied to every later record;
//   - screens learned from the destination's own evidence (varchar length,
//     NOT NULL column, unique key, CHECK constraint definition) set aside
//     later records that would certainly fail the same way, with the same
//     category and fingerprint and zero attempts, instead of costing a
//     failed write each;
//   - errors that affect the whole batch are escalated and handed back.
//
// Records written by a delivery that then failed are remembered and
// skipped on the redelivery, so insert mode gets no duplicates from a
// partial batch.
//
// # Dead letters
//
// A DeadLetter carries the original payload and metadata, the category,
// fingerprint, template, error text and code, the component path, the
// attempt count and the schema or mapping version. Its id is derived from
// where and what the record is, so writing it again after a redelivery is
// a no-op. Sinks: PostgresDeadLetters (a table, created on first use),
// FileDeadLetters (JSON Lines) and SinkFunc (any Benthos output). Replay
// hands pending dead letters out in chunks and marks each chunk replayed
// only after it was sent, so replaying twice sends each record once.
package resolution
