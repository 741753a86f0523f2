// Package mapping is the Schema Mapping Agent: given a source and a target
// schema (the seed's Schema/Field, optionally with descriptions and sample
// values) it proposes which source field feeds which target field, with a
// confidence, the score of every signal and a one-sentence reason, and it
// generates the transformation as Bloblang and as PostgreSQL.
//
// How a proposal is made:
//
//   - Features are computed once per field: names are split (snake_case,
//     camelCase, acronyms, digits, run-together words), abbreviations are
//     expanded and synonyms canonicalised; descriptions become TF-IDF
//     vectors; declared types from any dialect become a Kind; samples become
//     a Profile (value kind, date layout, flag vocabulary, ranges, shapes).
//   - Every pair is scored by independent signals: name (token similarity
//     weighted by IDF, abbreviation alignment, consonant skeletons),
//     description, type compatibility, instance (shared rare values,
//     patterns, ranges) and history (earlier verdicts). The name leads;
//     descriptions can only support it, values can support or contradict.
//   - A global one-to-one assignment (Hungarian method) picks the pairs;
//     a source may additionally feed a target it fits as well as its own
//     (one-to-many), and derived mappings combine or split fields (names,
//     numbered address lines, date and time; full name, date parts).
//   - Confidence is calibrated by competition: a pair with a close rival is
//     less certain. Thresholds turn it into accepted, review or unmapped.
//   - An optional LLM re-ranks ambiguous targets through opaque candidate
//     ids, so it can neither invent fields nor act on text hidden in the
//     schemas; any failure keeps the embedded ranking.
//
// The package imports no Benthos code: plugins/mapping adapts it to a
// processor and cmd/agentetl to the `map` command.
package mapping
