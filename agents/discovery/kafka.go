package discovery

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/agentetl/agentetl/internal/kafkautil"
)

// Kafka topics as a discovery source.
//
//	kafka://[user:password@]host1:9092[,host2:9092]/[?topics=orders,payments][&sample=500]
//	        [&sasl=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512][&tls=true][&tls_skip_verify=true][&timeout=15s]
//
// Every selected topic is one entity of kind "topic" (all topics except the
// internal "__..." ones when topics is not given; the agent's include and
// exclude patterns apply to topic names). The connector reads the latest
// `sample` messages of each topic (default 500, spread over its partitions)
// as a direct consumer at explicit offsets: it never joins a consumer group
// and never commits, so it cannot disturb the offsets of a running pipeline.
// The message values, decoded as JSON objects, become rows: the top-level
// keys are the columns, with types inferred as for JSON Lines files
// (bigint, double, boolean, string, date, timestamp, object, array, json for
// mixed kinds) and the usual field profiles. A field missing from some
// sampled messages is nullable.
//
// Messages that are not JSON objects (plain text, Avro, a truncated
// document) and tombstones (no value) do not fail discovery: they are left
// out of the profiles and counted in stats.sampleMethod, e.g. "latest 500 of
// 12000 messages across 3 partitions; 7 not JSON objects (first at partition
// 1 offset 4411), not profiled".
//
// Run again with a store, the agent compares the new sample's schema with
// the catalog's last version, so a field that appears in new messages or a
// field whose type changes is reported as a SchemaChange (column_added,
// type_changed, ...) like any table change.
const (
	kafkaKind            = "topic"
	kafkaDefaultSample   = 500
	kafkaMaxSample       = 100_000
	kafkaDefaultTimeout  = 15 * time.Second
	kafkaIdleAfterFetch  = 2 * time.Second
	kafkaDescriptionHead = "Kafka topic"
)

func init() {
	Register("kafka", openKafka)
}

type kafkaConnector struct {
	client  kafkautil.ClientConfig
	cl      *kgo.Client
	topics  []string // explicit selection; nil means every non-internal topic
	sample  int
	timeout time.Duration
}

// kafkaSample is the entity handle: the decoded rows of the sampled messages.
type kafkaSample struct {
	rows     [][]fileValue
	method   string
	partial  bool  // fewer messages profiled than the topic retains
	retained int64 // messages the topic retains (end - start offsets)
}

// parseKafkaDSN reads the brokers, credentials and options of a kafka:// DSN.
func parseKafkaDSN(dsn string) (*kafkaConnector, error) {
	scheme, rest, _ := strings.Cut(dsn, "://")
	if !strings.EqualFold(scheme, "kafka") {
		return nil, fmt.Errorf("not a kafka:// DSN")
	}
	authority, query, _ := strings.Cut(rest, "?")
	if i := strings.IndexByte(authority, '/'); i >= 0 {
		if p := strings.Trim(authority[i:], "/"); p != "" {
			return nil, fmt.Errorf("unexpected path %q: select topics with ?topics=a,b", p)
		}
		authority = authority[:i]
	}
	c := &kafkaConnector{sample: kafkaDefaultSample, timeout: kafkaDefaultTimeout}
	var user, pass string
	hasUser := false
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		info := authority[:at]
		authority = authority[at+1:]
		u, p, _ := strings.Cut(info, ":")
		var err error
		if user, err = url.PathUnescape(u); err != nil {
			return nil, fmt.Errorf("user name: %w", err)
		}
		if pass, err = url.PathUnescape(p); err != nil {
			return nil, errors.New("password is not valid URL encoding")
		}
		hasUser = true
	}
	for _, h := range strings.Split(authority, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if !strings.Contains(h, ":") {
			h += ":9092"
		}
		c.client.SeedBrokers = append(c.client.SeedBrokers, h)
	}
	if len(c.client.SeedBrokers) == 0 {
		return nil, errors.New("no broker: write kafka://host:9092/")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	known := map[string]bool{"topics": true, "sample": true, "sasl": true, "tls": true, "tls_skip_verify": true, "timeout": true, "client_id": true}
	for k := range q {
		if !known[k] {
			return nil, fmt.Errorf("unknown option %q (known: client_id, sample, sasl, timeout, tls, tls_skip_verify, topics)", k)
		}
	}
	for _, t := range q["topics"] {
		for _, name := range strings.Split(t, ",") {
			if name = strings.TrimSpace(name); name != "" {
				c.topics = append(c.topics, name)
			}
		}
	}
	if s := q.Get("sample"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > kafkaMaxSample {
			return nil, fmt.Errorf("sample=%q: want a number of messages per topic from 1 to %d", s, kafkaMaxSample)
		}
		c.sample = n
	}
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("timeout=%q: want a positive duration such as 15s", s)
		}
		c.timeout = d
	}
	c.client.ClientID = "agentetl-discovery"
	if id := q.Get("client_id"); id != "" {
		c.client.ClientID = id
	}
	mech := q.Get("sasl")
	if mech == "" && hasUser {
		mech = kafkautil.SASLPlain
	}
	if c.client.SASL, err = kafkautil.SASLMechanism(mech, user, pass); err != nil {
		return nil, err
	}
	if c.client.SASL != nil && user == "" {
		return nil, errors.New("sasl needs a user: kafka://user:password@host:9092/")
	}
	tlsOn, err := boolOption(q, "tls")
	if err != nil {
		return nil, err
	}
	skip, err := boolOption(q, "tls_skip_verify")
	if err != nil {
		return nil, err
	}
	if tlsOn || skip {
		c.client.TLS = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip} //nolint:gosec // opt-in
	}
	return c, nil
}

func boolOption(q url.Values, key string) (bool, error) {
	s := q.Get(key)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", key, s)
	}
	return b, nil
}

func openKafka(ctx context.Context, dsn string, _ ConnectorOptions) (Connector, error) {
	c, err := parseKafkaDSN(dsn)
	if err != nil {
		return nil, &SourceError{Op: "open", Permanent: true, Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.cl, err = c.client.Connect(pctx); err != nil {
		return nil, kafkaSourceError("connect", err)
	}
	return c, nil
}

// kafkaSourceError keeps kafkautil's classification: a rejected login or a
// bad configuration is permanent, an unreachable broker is retryable.
func kafkaSourceError(op string, err error) error {
	var ke *kafkautil.Error
	permanent := errors.As(err, &ke) && !ke.Retryable &&
		(errors.Is(err, kafkautil.ErrAuthentication) || errors.Is(err, kafkautil.ErrAuthorization) || errors.Is(err, kafkautil.ErrConfig))
	return &SourceError{Op: op, Permanent: permanent, Err: err}
}

func (c *kafkaConnector) Kind() string { return "kafka" }

func (c *kafkaConnector) Close() error {
	if c.cl != nil {
		c.cl.Close()
		c.cl = nil
	}
	return nil
}

// kafkaPartition is one partition's retained range and the part sampled.
type kafkaPartition struct {
	topic      string
	partition  int32
	start, end int64 // first retained offset, next offset to be written
	from       int64 // first sampled offset
}

type kafkaTopic struct {
	name  string
	parts []*kafkaPartition
	err   string
}

func (c *kafkaConnector) Entities(ctx context.Context, f *Filter) ([]*Entity, []SkippedTable, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	topics, skipped, err := c.metadata(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	if err := c.offsets(ctx, topics); err != nil {
		return nil, nil, err
	}
	var live []*kafkaTopic
	for _, t := range topics {
		if t.err != "" {
			skipped = append(skipped, SkippedTable{Table: t.name, Reason: t.err})
			continue
		}
		c.plan(t)
		live = append(live, t)
	}
	samples, err := c.read(ctx, live)
	if err != nil {
		return nil, nil, err
	}
	ents := make([]*Entity, 0, len(live))
	for _, t := range live {
		ents = append(ents, samples[t.name].entity(t))
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents, skipped, nil
}

// metadata lists the selected topics and their partitions.
func (c *kafkaConnector) metadata(ctx context.Context, f *Filter) ([]*kafkaTopic, []SkippedTable, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range c.topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return nil, nil, kafkaSourceError("read topic metadata", kafkautil.Classify("metadata", kafkautil.ErrNoBrokers, err))
	}
	var out []*kafkaTopic
	var skipped []SkippedTable
	for _, rt := range resp.Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		if name == "" || !f.Match("", name) {
			continue
		}
		if c.topics == nil && (rt.IsInternal || strings.HasPrefix(name, "__")) {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			reason := err.Error()
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				reason = "topic does not exist"
			}
			if errors.Is(err, kerr.TopicAuthorizationFailed) {
				reason = "permission denied: " + reason
			}
			skipped = append(skipped, SkippedTable{Table: name, Reason: reason})
			continue
		}
		t := &kafkaTopic{name: name}
		for _, p := range rt.Partitions {
			t.parts = append(t.parts, &kafkaPartition{topic: name, partition: p.Partition})
		}
		sort.Slice(t.parts, func(i, j int) bool { return t.parts[i].partition < t.parts[j].partition })
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, skipped, nil
}

// offsets fills each partition's start and end offsets with two ListOffsets
// requests, which the client sends to the partition leaders.
func (c *kafkaConnector) offsets(ctx context.Context, topics []*kafkaTopic) error {
	byKey := map[string]map[int32]*kafkaPartition{}
	for _, t := range topics {
		byKey[t.name] = map[int32]*kafkaPartition{}
		for _, p := range t.parts {
			byKey[t.name][p.partition] = p
		}
	}
	if len(byKey) == 0 {
		return nil
	}
	topicOf := map[string]*kafkaTopic{}
	for _, t := range topics {
		topicOf[t.name] = t
	}
	for _, ts := range []int64{-2, -1} { // earliest, latest
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		for _, t := range topics {
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = t.name
			for _, p := range t.parts {
				rp := kmsg.NewListOffsetsRequestTopicPartition()
				rp.Partition = p.partition
				rp.CurrentLeaderEpoch = -1
				rp.Timestamp = ts
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, c.cl)
		if err != nil {
			return kafkaSourceError("list offsets", kafkautil.Classify("list offsets", kafkautil.ErrNoBrokers, err))
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				p := byKey[rt.Topic][rp.Partition]
				if p == nil {
					continue
				}
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					if t := topicOf[rt.Topic]; t != nil && t.err == "" {
						t.err = fmt.Sprintf("partition %d offsets: %v", rp.Partition, err)
					}
					continue
				}
				if ts == -2 {
					p.start = rp.Offset
				} else {
					p.end = rp.Offset
				}
			}
		}
	}
	return nil
}

// plan spreads the topic's sample over its partitions, taking the newest
// messages of each: partitions with fewer messages than their share give the
// rest to the others.
func (c *kafkaConnector) plan(t *kafkaTopic) {
	parts := append([]*kafkaPartition(nil), t.parts...)
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].end-parts[i].start < parts[j].end-parts[j].start })
	remaining := int64(c.sample)
	for i, p := range parts {
		avail := max(p.end-p.start, 0)
		share := remaining / int64(len(parts)-i)
		if rest := remaining % int64(len(parts)-i); rest > 0 {
			share++
		}
		take := min(avail, share)
		p.from = p.end - take
		remaining -= take
	}
}

// read consumes every planned range in one direct (group-less) client and
// decodes the values.
func (c *kafkaConnector) read(ctx context.Context, topics []*kafkaTopic) (map[string]*kafkaTopicSample, error) {
	out := map[string]*kafkaTopicSample{}
	assign := map[string]map[int32]kgo.Offset{}
	pending := map[string]map[int32]int64{} // next offset still expected, per partition
	for _, t := range topics {
		out[t.name] = &kafkaTopicSample{}
		for _, p := range t.parts {
			if p.from >= p.end {
				continue
			}
			if assign[t.name] == nil {
				assign[t.name], pending[t.name] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			assign[t.name][p.partition] = kgo.NewOffset().At(p.from)
			pending[t.name][p.partition] = p.end
		}
	}
	if len(assign) == 0 {
		return out, nil
	}
	cl, err := c.client.Connect(ctx, kgo.ConsumePartitions(assign), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, kafkaSourceError("connect", err)
	}
	defer cl.Close()
	left := 0
	for _, ps := range pending {
		left += len(ps)
	}
	lastProgress := time.Now()
	for left > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			// Out of time: profile what was read, and say so.
			for name, ps := range pending {
				out[name].incomplete += len(ps)
			}
			break
		}
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("read %s partition %d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return nil, kafkaSourceError("sample", kafkautil.Classify("sample", kafkautil.ErrNoBrokers, ferr))
		}
		progressed := false
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := pending[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			progressed = true
			out[r.Topic].add(r)
			if r.Offset >= end-1 {
				delete(pending[r.Topic], r.Partition)
				left--
			}
		})
		if progressed {
			lastProgress = time.Now()
		} else if time.Since(lastProgress) > kafkaIdleAfterFetch {
			// Offsets at the end of a partition may hold no record
			// (transaction markers, compaction): nothing more will come.
			break
		}
	}
	return out, nil
}

// kafkaTopicSample collects one topic's sampled messages.
type kafkaTopicSample struct {
	recs       []*kgo.Record
	incomplete int // partitions not read to the end before the timeout
}

func (s *kafkaTopicSample) add(r *kgo.Record) { s.recs = append(s.recs, r) }

// entity decodes the sample into rows and infers the columns.
func (s *kafkaTopicSample) entity(t *kafkaTopic) *Entity {
	sort.Slice(s.recs, func(i, j int) bool {
		a, b := s.recs[i], s.recs[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	inf := newInferrer()
	var names []string
	index := map[string]int{}
	h := &kafkaSample{}
	var notJSON, tombstones int
	var firstBad *kgo.Record
	for _, r := range s.recs {
		if r.Value == nil {
			tombstones++
			continue
		}
		var vals []fileValue
		err := decodeJSONObject(r.Value, func(key string, raw json.RawMessage) {
			i, ok := index[key]
			if !ok {
				i = len(names)
				index[key] = i
				names = append(names, key)
				inf.setNames(names)
			}
			for len(vals) <= i {
				vals = append(vals, fileValue{null: true})
			}
			vals[i] = jsonValue(raw)
		})
		if err != nil {
			notJSON++
			if firstBad == nil {
				firstBad = r
			}
			continue
		}
		for len(vals) < len(names) {
			vals = append(vals, fileValue{null: true})
		}
		inf.add(vals)
		h.rows = append(h.rows, vals)
	}
	var retained int64
	for _, p := range t.parts {
		retained += max(p.end-p.start, 0)
	}
	method := fmt.Sprintf("latest %d of %d messages across %d partitions", len(s.recs), retained, len(t.parts))
	var notes []string
	if notJSON > 0 {
		notes = append(notes, fmt.Sprintf("%d not JSON objects (first at partition %d offset %d), not profiled", notJSON, firstBad.Partition, firstBad.Offset))
	}
	if tombstones > 0 {
		notes = append(notes, fmt.Sprintf("%d tombstones (no value), not profiled", tombstones))
	}
	if s.incomplete > 0 {
		notes = append(notes, fmt.Sprintf("%d partitions not read to the end before the timeout", s.incomplete))
	}
	if len(notes) > 0 {
		method += "; " + strings.Join(notes, "; ")
	}
	h.method = method
	h.partial = int64(len(s.recs)) < retained || len(h.rows) < len(s.recs)
	h.retained = retained
	return &Entity{
		Name: t.name, Kind: kafkaKind, Handle: h, Columns: inf.columns(),
		Description: fmt.Sprintf("%s with %d partitions", kafkaDescriptionHead, len(t.parts)),
		RowEstimate: retained,
	}
}

// decodeJSONObject calls fn for each top-level key of a JSON object, in
// document order, and fails for anything that is not exactly one object.
func decodeJSONObject(b []byte, fn func(string, json.RawMessage)) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	type kv struct {
		k string
		v json.RawMessage
	}
	var pairs []kv
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		pairs = append(pairs, kv{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("trailing data after the JSON object")
	}
	for _, p := range pairs {
		fn(p.k, p.v)
	}
	return nil
}

func (c *kafkaConnector) Rows(ctx context.Context, e *Entity, target int64, emit func([][]byte) error) (ReadInfo, error) {
	h, ok := e.Handle.(*kafkaSample)
	if !ok {
		return ReadInfo{}, fmt.Errorf("topic %s was not sampled by this connector", e.Name)
	}
	row := make([][]byte, len(e.Columns))
	for n, vals := range h.rows {
		if int64(n) >= target {
			break
		}
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return ReadInfo{}, err
			}
		}
		for i := range row {
			row[i] = nil
			if i < len(vals) && !vals[i].null {
				row[i] = vals[i].text
			}
		}
		if err := emit(row); err != nil {
			return ReadInfo{}, err
		}
	}
	// A Kafka topic is always seen through a window of its messages; the
	// method says which, and what was left out.
	return ReadInfo{Sampled: h.partial, Method: h.method, RowCount: h.retained}, nil
}
