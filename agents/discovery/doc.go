// Package discovery is the Data Discovery Agent: it connects to a source,
// extracts every table's metadata in a few bulk catalog queries, profiles the
// columns (sampling large tables), detects schema changes against the latest
// catalog version and keeps the versioned catalog in the metadata store. It
// has no Benthos import; the `discovery` input and `agentetl discover` are
// thin layers over Agent.
//
// # Sources
//
// Connectors are chosen by DSN scheme and registered with Register, so other
// packages can add sources (Kafka topics) through the same interface:
//
//	postgres://user:pass@host:5432/db   pg_catalog: 3 queries (relations, columns, keys);
//	                                     comments as descriptions, reltuples scaled to the
//	                                     current relation size as row estimate
//	mysql://user:pass@host:3306/db      information_schema: 3 queries; TABLE_ROWS estimate;
//	                                     without a database, every non-system database
//	sqlite:///path/to/file.db            sqlite_schema with pragma_table_info and
//	                                     pragma_foreign_key_list: 3 queries; opened read-only
//	file:///path/to/dir                  every *.csv, *.tsv, *.jsonl, *.ndjson, *.json (JSON
//	                                     Lines) below dir: one entity per file, types
//	                                     inferred from the first 10,000 rows
//	kafka://[u:p@]b1:9092,b2/?topics=a,b the newest sample=N messages of each topic, read at
//	                                     fixed offsets (no group, no commit); top-level JSON
//	                                     keys become fields; non-JSON messages are counted
//
// # Profiles and sampling
//
// Each table is profiled with one query that returns every column in text
// form; the statistics are computed as the rows stream in, so the cost is
// one scan of at most Config.SampleRows rows (default 100,000) per table.
// Larger tables are sampled: TABLESAMPLE SYSTEM (p) REPEATABLE (seed) on
// PostgreSQL, RAND(seed) < p on MySQL, random() on SQLite, a reservoir
// sample on files. Stats.sampled, stats.sampleMethod and stats.sampleSize
// say which; distinct counts of a sample are extrapolated with the
// Haas-Stokes (Duj1) estimator and flagged distinctEstimated.
//
// # JSON document (CLI output, input messages, catalog profile)
//
// One object per table (SourceMetadata); key names are stable:
//
//	table                    qualified name: schema.table (files: relative path)
//	schemaName, name         the two parts of table
//	kind                     table, view, materialized_view, foreign_table, partitioned_table, file
//	sourceId, connector      source identifier (scheme://host:port/db) and connector kind
//	description              table comment
//	schema                   the seed Schema: id, sourceId, version, timestamp,
//	                         fields[]: name, dataType, nullable, description
//	primaryKey               column names in key order
//	foreignKeys[]            name, columns, refTable, refColumns
//	schemaHash               hash of the structure; a new version is written when it changes
//	discoveredAt             time of the run
//	stats.rowCount           row count: exact, or estimated when stats.rowCountEstimated; -1 unknown
//	stats.profiled           false for metadata-only discovery
//	stats.sampled            true when profiles come from a sample
//	stats.sampleMethod       "full scan", "TABLESAMPLE SYSTEM (11.500%) REPEATABLE (42)", ...
//	stats.sampleSize         rows profiled
//	stats.fields.<column>    nullFraction, nullCount, distinctCount, distinctEstimated,
//	                         min, max (typed: number, boolean or string; null if none),
//	                         topValues[]: value, count, frequency (count / rows profiled),
//	                         avgLength (characters), semanticType, semanticConfidence,
//	                         sample (a few distinct values)
//
// Semantic types: email, phone, url, uuid, ip, country_code, currency_code,
// postal_code, iso_date, iso_timestamp, epoch_seconds, epoch_millis,
// boolean_flag (Y/N, yes/no, T/F, A/I, A/T, 1/0, ...), or "".
//
// # Schema changes
//
// SchemaChange: id, sourceId, table, changeType, severity, column,
// previousColumn (renames), typeChange (widening, narrowing, incompatible,
// equivalent), before and after (seed Field), confidence, reasoning,
// fromVersion, toVersion, detectedAt.
//
//	changeType                 severity
//	table_added                info
//	table_removed              breaking
//	column_added               non_breaking if nullable, else breaking
//	column_removed             breaking
//	column_renamed             breaking (confidence = pairing score)
//	type_changed               non_breaking if widening, info if equivalent, else breaking
//	nullability_changed        non_breaking when it becomes nullable, breaking when NOT NULL
//	description_changed        info
//	table_description_changed  info
//	primary_key_changed        info
//
// A rename pairs a removed column with an added one when their similarity
// reaches Config.RenameThreshold (0.6): 40% profile similarity (null
// fraction, distinct count, length, min, max, top values, semantic type),
// 25% name similarity, 15% type, 15% position among the unchanged columns,
// 5% nullability; without informative profiles the structure decides.
package discovery
