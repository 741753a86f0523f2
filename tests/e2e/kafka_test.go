package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

// The Kafka tests run configs/examples/kafka-to-postgres.yaml as real engine
// processes against an in-process kfake cluster listening on a fixed
// address, so a killed and restarted engine finds the same cluster, topic
// and committed offsets.

const kafkaTopic = "orders"

func kafkaExample() string {
	return filepath.Join(moduleRoot, "configs", "examples", "kafka-to-postgres.yaml")
}

// kafkaRig is one cluster, one target table with its order checks, and the
// environment of the example config.
type kafkaRig struct {
	addr   string
	db     *testpg.DB
	target string // schema.orders
	dlq    string // schema.dlq
	store  string
	// finals is the last version produced for each key.
	finals map[string]int
	next   map[string]int
}

func newKafkaRig(t *testing.T, partitions int32) *kafkaRig {
	t.Helper()
	port := testutil.FreePort(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(partitions, kafkaTopic))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	db := testpg.NewSchema(t)
	r := &kafkaRig{addr: c.ListenAddrs()[0], db: db, target: db.Schema + ".orders", dlq: db.Schema + ".dlq",
		store: "sqlite://" + filepath.Join(t.TempDir(), "store.db"), finals: map[string]int{}, next: map[string]int{}}
	// The target, plus two order checks fed by triggers: every applied
	// change is logged in history, and a change that moves a key's version
	// backwards is logged in regressions. A redelivery or a reordering shows
	// up in one of them; the test checks the checks with a forced
	// regression.
	db.Exec(t, `CREATE TABLE `+r.target+` (order_id text PRIMARY KEY, customer_email text, amount numeric(12,2) NOT NULL,
		status text NOT NULL, updated_at timestamptz NOT NULL, version bigint NOT NULL)`)
	db.Exec(t, `CREATE TABLE `+db.Schema+`.history (n bigserial PRIMARY KEY, order_id text NOT NULL, version bigint NOT NULL)`)
	db.Exec(t, `CREATE TABLE `+db.Schema+`.regressions (order_id text, old_version bigint, new_version bigint)`)
	db.Exec(t, fmt.Sprintf(`CREATE FUNCTION %[1]s.track() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		  IF TG_OP = 'UPDATE' AND NEW.version < OLD.version THEN
		    INSERT INTO %[1]s.regressions VALUES (NEW.order_id, OLD.version, NEW.version);
		  END IF;
		  INSERT INTO %[1]s.history (order_id, version) VALUES (NEW.order_id, NEW.version);
		  RETURN NULL;
		END $$`, db.Schema))
	// AFTER: only the action that really happened (an upsert's conflicting
	// INSERT fires BEFORE INSERT and then the UPDATE).
	db.Exec(t, `CREATE TRIGGER track AFTER INSERT OR UPDATE ON `+r.target+` FOR EACH ROW EXECUTE FUNCTION `+db.Schema+`.track()`)
	return r
}

func (r *kafkaRig) env(group string) map[string]string {
	return map[string]string{
		"KAFKA_BROKERS": r.addr, "KAFKA_TOPIC": kafkaTopic, "KAFKA_GROUP": group,
		"KAFKA_COMMIT_PERIOD": "200ms", "KAFKA_SESSION_TIMEOUT": "6s",
		"TARGET_DSN": testpg.DSN(), "TARGET_TABLE": r.target, "DLQ_TABLE": r.dlq,
		"STORE_DSN": r.store, "LOG_LEVEL": "WARN",
	}
}

// event is one order event: version counts the events of its order in
// produce order.
func (r *kafkaRig) event(key string) []byte {
	r.next[key]++
	v := r.next[key]
	r.finals[key] = v
	b, _ := json.Marshal(map[string]any{
		"orderId": key, "customerEmail": key + "@example.com", "amount": fmt.Sprintf("%d.%02d", v, v%100),
		"status": []string{"new", "paid", "shipped", "delivered"}[v%4], "updatedAtMs": 1718000000000 + int64(v), "version": v,
	})
	return b
}

// producer returns a client that partitions by key hash, as the Java client
// does, so all events of one order share a partition.
func (r *kafkaRig) producer(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.DefaultProduceTopic(kafkaTopic), kgo.ProducerLinger(5*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// events builds n events over keys o-0..o-(keys-1) in a shuffled but
// fixed order, recording each key's last version.
func (r *kafkaRig) events(n, keys int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		key := "o-" + strconv.Itoa((i*7919+i/keys)%keys)
		recs[i] = &kgo.Record{Key: []byte(key), Value: r.event(key)}
	}
	return recs
}

// produceRecords writes records in chunks, pausing between chunks when pace > 0.
func produceRecords(cl *kgo.Client, recs []*kgo.Record, chunk int, pace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(recs) > 0 {
		n := min(chunk, len(recs))
		if err := cl.ProduceSync(ctx, recs[:n]...).FirstErr(); err != nil {
			return err
		}
		recs = recs[n:]
		time.Sleep(pace)
	}
	return nil
}

// produceEvents writes n events (see events) at once.
func (r *kafkaRig) produceEvents(t *testing.T, cl *kgo.Client, n, keys int) {
	t.Helper()
	require.NoError(t, produceRecords(cl, r.events(n, keys), 5000, 0))
}

// applied counts the keys whose row holds the last produced version.
func (r *kafkaRig) applied(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := r.db.Pool.Query(ctx, `SELECT order_id, version FROM `+r.target)
	require.NoError(t, err)
	defer rows.Close()
	n := 0
	for rows.Next() {
		var k string
		var v int
		require.NoError(t, rows.Scan(&k, &v))
		if r.finals[k] == v {
			n++
		}
	}
	require.NoError(t, rows.Err())
	return n
}

// progress is the share of produced events whose effect is in the target:
// the sum of the versions held over the sum of the final versions.
func (r *kafkaRig) progress(t *testing.T) float64 {
	t.Helper()
	total := 0
	for _, v := range r.finals {
		total += v
	}
	held := r.db.Int(t, `SELECT coalesce(sum(version), 0) FROM `+r.target)
	return float64(held) / float64(total)
}

// waitApplied waits until every key holds its last version, while the
// engine processes keep running.
func (r *kafkaRig) waitApplied(t *testing.T, limit time.Duration, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n := r.applied(t)
		if n == len(r.finals) {
			return
		}
		for _, p := range procs {
			require.Falsef(t, p.exited(), "engine exited with %d of %d keys applied\n%s", n, len(r.finals), p.output())
		}
		if time.Now().After(deadline) {
			var out string
			for _, p := range procs {
				out += p.output()
			}
			require.FailNowf(t, "not all events applied", "%d of %d keys hold their last version after %s\n%s", n, len(r.finals), limit, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkFinal requires exactly one row per key, each with its last version
// and the values of that version, no regression, and nothing dead-lettered.
func (r *kafkaRig) checkFinal(t *testing.T) {
	t.Helper()
	require.EqualValues(t, len(r.finals), r.db.Int(t, `SELECT count(*) FROM `+r.target), "one row per distinct key")
	require.Equal(t, len(r.finals), r.applied(t), "every key holds its last produced version")
	require.Zero(t, r.db.Int(t, `SELECT count(*) FROM `+r.target+` WHERE amount <> (version || '.' || lpad((version % 100)::text, 2, '0'))::numeric
		OR updated_at <> to_timestamp((1718000000000 + version) / 1000.0) OR customer_email <> order_id || '@example.com'`),
		"each row carries the values of its version")
	require.Zero(t, r.db.Int(t, `SELECT count(*) FROM `+r.db.Schema+`.regressions`), "a key's version moved backwards")
	dlq := r.db.String(t, `SELECT coalesce(to_regclass($1)::text, '')`, r.dlq)
	if dlq != "" {
		require.Zero(t, r.db.Int(t, `SELECT count(*) FROM `+r.dlq), "valid events were dead-lettered")
	}
}

// stop ends an engine with SIGTERM, as a deployment would, and requires a
// clean exit.
func stop(t *testing.T, p *proc) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "engine did not stop within 30s of SIGTERM", p.output())
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.False(t, ws.Signaled(), "engine died from %v\n%s", ws.Signal(), p.output())
	require.Equal(t, 0, ws.ExitStatus(), "engine exit status after SIGTERM\n%s", p.output())
}

// groupLag is the number of records between the group's committed offsets
// and the end of each partition.
func groupLag(t *testing.T, addr, group string, partitions int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = kafkaTopic
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = group
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic = kafkaTopic
	for p := int32(0); p < partitions; p++ {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = p, -1, -1
		lt.Partitions = append(lt.Partitions, lp)
		ft.Partitions = append(ft.Partitions, p)
	}
	lo.Topics = []kmsg.ListOffsetsRequestTopic{lt}
	of.Topics = []kmsg.OffsetFetchRequestTopic{ft}
	ends, err := lo.RequestWith(ctx, cl)
	require.NoError(t, err)
	committed, err := of.RequestWith(ctx, cl)
	require.NoError(t, err)
	got := map[int32]int64{}
	for _, tp := range committed.Topics {
		for _, p := range tp.Partitions {
			got[p.Partition] = max(p.Offset, 0)
		}
	}
	var lag int64
	for _, tp := range ends.Topics {
		for _, p := range tp.Partitions {
			lag += p.Offset - got[p.Partition]
		}
	}
	return lag
}

// groupOwners maps each member of the group that holds partitions to the
// number it holds.
func groupOwners(t *testing.T, addr, group string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	out := map[string]int{}
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			var a kmsg.ConsumerMemberAssignment
			if len(m.MemberAssignment) == 0 || a.ReadFrom(m.MemberAssignment) != nil {
				continue
			}
			n := 0
			for _, tp := range a.Topics {
				n += len(tp.Partitions)
			}
			if n > 0 {
				out[m.MemberID] = n
			}
		}
	}
	return out
}

// TestKafkaPoisonGoesToDeadLetter: messages that are not JSON objects go to
// the dead-letter table with their topic, partition and offset, and the
// events behind them in the same partition are still applied.
func TestKafkaPoisonGoesToDeadLetter(t *testing.T) {
	r := newKafkaRig(t, 4)
	cl := r.producer(t)
	r.produceEvents(t, cl, 2000, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Poison keyed like real orders, so it sits in their partitions, ahead
	// of their last events.
	poison := []*kgo.Record{
		{Key: []byte("o-7"), Value: []byte("order o-7 paid (plain text)")},
		{Key: []byte("o-42"), Value: []byte(`{"orderId": "o-42", "amount": `)},
		{Key: []byte("o-63"), Value: []byte(`["not", "an", "object"]`)},
	}
	require.NoError(t, cl.ProduceSync(ctx, poison...).FirstErr())
	for _, k := range []string{"o-7", "o-42", "o-63"} {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: r.event(k)}).FirstErr())
	}
	r.produceEvents(t, cl, 1000, 100)

	p := startAgent(t, 90*time.Second, r.env("poison"), "run", kafkaExample())
	r.waitApplied(t, 60*time.Second, p)
	require.Eventually(t, func() bool {
		return r.db.String(t, `SELECT coalesce(to_regclass($1)::text, '')`, r.dlq) != "" &&
			r.db.Int(t, `SELECT count(*) FROM `+r.dlq) == int64(len(poison))
	}, 20*time.Second, 100*time.Millisecond, "dead letters\n%s", p.output())
	stop(t, p)
	dump, err := r.db.Pool.Query(ctx, `SELECT category, error, component, metadata::text FROM `+r.dlq)
	require.NoError(t, err)
	for dump.Next() {
		var c, e, comp, m string
		require.NoError(t, dump.Scan(&c, &e, &comp, &m))
		t.Logf("dead letter: %s %s %s %s", c, comp, e, m)
	}
	dump.Close()

	for _, rec := range poison {
		var topic, part, off, key, category string
		var raw []byte
		require.NoError(t, r.db.Pool.QueryRow(ctx, `SELECT metadata->>'kafka_topic', metadata->>'kafka_partition', metadata->>'kafka_offset',
			metadata->>'kafka_key', category, coalesce(payload_raw, convert_to(payload::text, 'UTF8')) FROM `+r.dlq+`
			WHERE metadata->>'kafka_partition' = $1 AND metadata->>'kafka_offset' = $2`,
			strconv.Itoa(int(rec.Partition)), strconv.FormatInt(rec.Offset, 10)).Scan(&topic, &part, &off, &key, &category, &raw),
			"dead letter for partition %d offset %d", rec.Partition, rec.Offset)
		require.Equal(t, kafkaTopic, topic)
		require.Equal(t, string(rec.Key), key)
		require.Equal(t, "poison", category)
		if json.Valid(rec.Value) {
			require.JSONEq(t, string(rec.Value), string(raw))
		} else {
			require.Equal(t, string(rec.Value), string(raw), "payload kept byte for byte")
		}
	}
	r.checkFinalExceptDLQ(t)
	require.Zero(t, groupLag(t, r.addr, "poison", 4), "every offset, the poison's included, is committed")
}

// checkFinalExceptDLQ is checkFinal for a run that dead-letters on purpose.
func (r *kafkaRig) checkFinalExceptDLQ(t *testing.T) {
	t.Helper()
	dlq := r.dlq
	r.dlq = r.db.Schema + ".no_such_table"
	defer func() { r.dlq = dlq }()
	r.checkFinal(t)
}

// TestKafkaKillAndRestart: the engine is killed with SIGKILL in the middle
// of the stream and started again in the same group. Every event ends up
// applied, with exactly one row per key holding the key's last version.
func TestKafkaKillAndRestart(t *testing.T) {
	const n, keys = 100_000, 5000
	r := newKafkaRig(t, 8)
	r.produceEvents(t, r.producer(t), n, keys)

	p := startAgent(t, 90*time.Second, r.env("kill"), "run", kafkaExample())
	var at float64
	for {
		require.Falsef(t, p.exited(), "engine exited before the kill\n%s", p.output())
		if at = r.progress(t); at >= 0.15 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill(t)
	atKill := r.progress(t)
	t.Logf("SIGKILL at %.0f%% of the events applied (%.0f%% after it died), lag %d", 100*at, 100*atKill, groupLag(t, r.addr, "kill", 8))
	require.Less(t, atKill, 0.95, "the stream finished before the kill landed; produce more events")
	history := r.db.Int(t, `SELECT count(*) FROM `+r.db.Schema+`.history`)

	p = startAgent(t, 90*time.Second, r.env("kill"), "run", kafkaExample())
	r.waitApplied(t, 60*time.Second, p)
	stop(t, p)
	// A kill loses the uncommitted tail of each partition's progress: the
	// restarted engine applies it again. Those replays may move a key
	// backwards for a moment (they are older than what was written), and
	// are then overtaken by the newer events; the end state is what counts.
	regressions := r.db.Int(t, `SELECT count(*) FROM `+r.db.Schema+`.regressions`)
	t.Logf("replayed after restart: %d key versions moved back and were re-applied; %d changes before the kill, %d in all",
		regressions, history, r.db.Int(t, `SELECT count(*) FROM `+r.db.Schema+`.history`))
	r.db.Exec(t, `TRUNCATE `+r.db.Schema+`.regressions`)
	r.checkFinal(t)
	require.Zero(t, groupLag(t, r.addr, "kill", 8), "all offsets committed after the clean stop")
}

// TestKafkaOrderingAtDestination: 200,000 keyed events over 8 partitions.
// At the destination every key's versions are applied in produce order:
// a trigger logs any update that moves a key's version backwards, and
// the log of applied versions per key must be strictly increasing.
func TestKafkaOrderingAtDestination(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 40_000
	}
	const keys = 2000
	r := newKafkaRig(t, 8)
	start := time.Now()
	r.produceEvents(t, r.producer(t), n, keys)
	t.Logf("produced %d events over %d keys in %s", n, keys, time.Since(start).Round(time.Millisecond))

	// The check can fail: a forced backwards update is caught.
	r.db.Exec(t, `INSERT INTO `+r.target+` VALUES ('probe', NULL, 1, 'new', now(), 5)`)
	r.db.Exec(t, `UPDATE `+r.target+` SET version = 4 WHERE order_id = 'probe'`)
	require.EqualValues(t, 1, r.db.Int(t, `SELECT count(*) FROM `+r.db.Schema+`.regressions`), "the order check must see a regression")
	r.db.Exec(t, `DELETE FROM `+r.target+` WHERE order_id = 'probe'`)
	r.db.Exec(t, `TRUNCATE `+r.db.Schema+`.regressions, `+r.db.Schema+`.history`)

	env := r.env("ordering")
	env["THREADS"] = "2"
	env["MAX_IN_FLIGHT"] = "8"
	start = time.Now()
	p := startAgent(t, 120*time.Second, env, "run", kafkaExample())
	r.waitApplied(t, 100*time.Second, p)
	took := time.Since(start)
	stop(t, p)
	t.Logf("%d events applied in %s (%.0f events/s, engine start included)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())

	r.checkFinal(t)
	// Every applied version of a key is above the one before it, in the
	// order the database applied them.
	require.Zero(t, r.db.Int(t, `SELECT count(*) FROM (SELECT version <= lag(version) OVER (PARTITION BY order_id ORDER BY n) AS back
		FROM `+r.db.Schema+`.history) h WHERE back`), "versions applied out of produce order")
	changes := r.db.Int(t, `SELECT count(*) FROM `+r.db.Schema+`.history`)
	t.Logf("%d row changes checked for order (batches keep only the last event of a key)", changes)
	require.Greater(t, changes, int64(n/10), "the order check saw too few changes to mean anything")
}

// TestKafkaRebalanceTwoEngines: two engines share the consumer group. The
// second joins while the first is working; more events keep arriving, and
// the first engine leaves (SIGTERM) while they do. The partitions move
// twice, and still every event is applied exactly once: one row per key
// with its last version, no version applied twice and none moving
// backwards.
func TestKafkaRebalanceTwoEngines(t *testing.T) {
	const first, rest, keys = 30_000, 70_000, 4000
	r := newKafkaRig(t, 8)
	cl := r.producer(t)
	r.produceEvents(t, cl, first, keys)
	later := r.events(rest, keys) // all versions known before progress is measured
	env := r.env("rebalance")
	env["KAFKA_BATCH"] = "200"
	a := startAgent(t, 120*time.Second, env, "run", kafkaExample())
	require.Eventually(t, func() bool { return r.progress(t) > 0.05 }, 30*time.Second, 20*time.Millisecond, "first engine never started")
	b := startAgent(t, 120*time.Second, env, "run", kafkaExample())
	require.Eventually(t, func() bool { return len(groupOwners(t, r.addr, "rebalance")) == 2 }, 30*time.Second, 50*time.Millisecond,
		"the second engine never got partitions")
	t.Logf("after the join: partitions per member %v, %.0f%% applied", groupOwners(t, r.addr, "rebalance"), 100*r.progress(t))

	// The rest arrives at about 20,000 events/s while both engines run.
	produced := make(chan error, 1)
	go func() { produced <- produceRecords(cl, later, 1000, 50*time.Millisecond) }()
	require.Eventually(t, func() bool { return r.progress(t) >= 0.5 }, 60*time.Second, 20*time.Millisecond)
	select {
	case err := <-produced:
		require.FailNow(t, "producing ended before the first engine left; the leave would not be mid-stream", "%v", err)
	default:
	}
	stop(t, a)
	t.Logf("first engine left at %.0f%% applied, while events were still being produced", 100*r.progress(t))
	require.NoError(t, <-produced)
	require.Eventually(t, func() bool {
		o := groupOwners(t, r.addr, "rebalance")
		return len(o) == 1 && slices.Equal(slices.Collect(maps.Values(o)), []int{8})
	}, 30*time.Second, 50*time.Millisecond, "the remaining engine should own all 8 partitions")
	r.waitApplied(t, 90*time.Second, b)
	stop(t, b)

	r.checkFinal(t)
	require.Zero(t, r.db.Int(t, `SELECT count(*) FROM (SELECT order_id, version FROM `+r.db.Schema+`.history
		GROUP BY 1, 2 HAVING count(*) > 1) d`), "a version was applied twice")
	require.Zero(t, groupLag(t, r.addr, "rebalance", 8))
	for _, p := range []*proc{a, b} {
		out := p.stderr.String() + p.stdout.String()
		require.NotContains(t, out, "abandoning them uncommitted", "a revoked batch timed out")
	}
}

// TestKafkaBadInput: an unreachable broker is a clear, classified error
// that is retried while the engine keeps running; a topic regex that does
// not compile is rejected by lint and by run before anything starts.
func TestKafkaBadInput(t *testing.T) {
	t.Run("unknown broker", func(t *testing.T) {
		db := testpg.NewSchema(t)
		db.Exec(t, `CREATE TABLE `+db.Schema+`.orders (order_id text PRIMARY KEY)`)
		addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		p := startAgent(t, 60*time.Second, map[string]string{
			"KAFKA_BROKERS": addr, "KAFKA_TOPIC": kafkaTopic, "TARGET_DSN": testpg.DSN(),
			"TARGET_TABLE": db.Schema + ".orders", "DLQ_TABLE": db.Schema + ".dlq",
			"STORE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "store.db"), "LOG_LEVEL": "WARN",
		}, "run", kafkaExample())
		require.Eventually(t, func() bool {
			return p.exited() || strings.Count(p.output(), "no kafka broker reachable") >= 3
		}, 30*time.Second, 100*time.Millisecond)
		out := p.output()
		require.Contains(t, out, addr, "the error names the broker")
		require.Contains(t, out, "[connection]", "the error is classified")
		require.False(t, p.exited(), "the engine keeps retrying\n%s", out)
		stop(t, p)
	})

	t.Run("bad topic regex", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "bad-regex.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte(`
input:
  kafka:
    seed_brokers: [ "127.0.0.1:9092" ]
    topics: [ "^orders\\.(eu|us", "^payments$" ]
    regexp_topics: true
    consumer_group: g
output:
  drop: {}
`), 0o600))
		code, out, _ := runAgent(t, 30*time.Second, nil, "lint", cfg)
		require.NotEqual(t, 0, code, out)
		require.Contains(t, out, `topic regex "^orders\\.(eu|us" does not compile`)
		require.NotContains(t, out, "payments", "only the bad expression is reported")

		code, out, _ = runAgent(t, 30*time.Second, nil, "run", cfg)
		require.NotEqual(t, 0, code, out)
		require.Contains(t, out, `does not compile`)
	})
}

// TestKafkaDiscoverCLI: `agentetl discover --dsn kafka://...` samples a
// topic without a consumer group and prints its inferred schema; with a
// store, a field that new events add is reported by --changes.
func TestKafkaDiscoverCLI(t *testing.T) {
	r := newKafkaRig(t, 2)
	cl := r.producer(t)
	r.produceEvents(t, cl, 500, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Key: []byte("x"), Value: []byte("not json")}).FirstErr())
	dsn := "kafka://" + r.addr + "/?topics=" + kafkaTopic + "&sample=100"
	store := "sqlite://" + filepath.Join(t.TempDir(), "catalog.db")

	code, stdout, stderr := runAgentSplit(t, 60*time.Second, "discover", "--dsn", dsn, "--store", store)
	require.Equal(t, 0, code, stderr)
	var tables []struct {
		Table  string `json:"table"`
		Kind   string `json:"kind"`
		Schema struct {
			Fields []struct {
				Name     string `json:"name"`
				DataType string `json:"dataType"`
			} `json:"fields"`
		} `json:"schema"`
		Stats struct {
			SampleMethod string `json:"sampleMethod"`
			SampleSize   int    `json:"sampleSize"`
		} `json:"stats"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &tables), stdout)
	require.Len(t, tables, 1)
	require.Equal(t, kafkaTopic, tables[0].Table)
	require.Equal(t, "topic", tables[0].Kind)
	types := map[string]string{}
	for _, f := range tables[0].Schema.Fields {
		types[f.Name] = f.DataType
	}
	require.Equal(t, map[string]string{"orderId": "string", "customerEmail": "string", "amount": "string", "status": "string",
		"updatedAtMs": "bigint", "version": "bigint"}, types)
	require.Equal(t, 99, tables[0].Stats.SampleSize)
	require.Contains(t, tables[0].Stats.SampleMethod, "1 not JSON objects")
	require.Empty(t, groupOwners(t, r.addr, "agentetl-discovery"))

	b, err := json.Marshal(map[string]any{"orderId": "o-1", "customerEmail": "o-1@example.com", "amount": "1.00", "status": "new", "updatedAtMs": 1, "version": 99, "channel": "web"})
	require.NoError(t, err)
	recs := make([]*kgo.Record, 200)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: b}
	}
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
	code, stdout, stderr = runAgentSplit(t, 60*time.Second, "discover", "--dsn", dsn, "--store", store, "--changes")
	require.Equal(t, 0, code, stderr)
	var changes []struct {
		ChangeType string `json:"changeType"`
		Column     string `json:"column"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &changes), stdout)
	require.Contains(t, changes, struct {
		ChangeType string `json:"changeType"`
		Column     string `json:"column"`
	}{"column_added", "channel"}, stdout)
}
