package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	kafkaBenchEvents     = 200_000
	kafkaBenchPartitions = 8
	kafkaBenchReps       = 5
	kafkaBenchExample    = "configs/examples/kafka-to-postgres.yaml"
	// Latency is measured at a fixed offered load: batches of
	// kafkaBenchLatBatch events every kafkaBenchLatTick, for kafkaBenchLatFor.
	kafkaBenchLatBatch = 50
	kafkaBenchLatTick  = 10 * time.Millisecond
	kafkaBenchLatFor   = 10 * time.Second
)

// kafkaBench runs configs/examples/kafka-to-postgres.yaml (kafka input,
// schema_mapping inside error_resolution, postgres upsert inside
// error_resolution) against an in-process kfake cluster, and the same
// config with the kafka input replaced by `generate` as the baseline.
//
// Throughput: kafkaBenchEvents events (each a new order) are produced to 8
// partitions before the engine starts; the rate is events / (last row's
// insert time - first row's insert time), the insert time being the
// target's `ingested_at DEFAULT clock_timestamp()`, so engine start-up and
// group join are left out; the wall time to the last row, start-up
// included, is reported beside it. The baseline generates the same events
// in batches of 500, the kafka input's batch size.
//
// Latency: with the engine caught up, 50 events are produced every 10 ms
// (5,000 events/s) for 10 s, each carrying its produce time in
// updatedAtMs; a row's end-to-end latency is ingested_at - updated_at
// (insert time inside the batch's transaction, which commits a few ms
// later). The baseline generates 50 events every 10 ms stamped with
// their generation time.
func kafkaBench(ctx context.Context, r *report, bin, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	const schema = "agentetl_bench_kafka"
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE; CREATE SCHEMA `+schema); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) //nolint:errcheck
	example, err := os.ReadFile(kafkaBenchExample)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "agentetl-bench-kafka-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	port, err := freePort()
	if err != nil {
		return err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return err
	}
	defer prod.Close()

	run := 0
	prepare := func() (table, topic string, env []string, err error) {
		run++
		table = fmt.Sprintf("%s.orders_%d", schema, run)
		topic = fmt.Sprintf("orders_%d", run)
		if _, err = conn.Exec(ctx, `CREATE TABLE `+table+` (order_id text PRIMARY KEY, customer_email text, amount numeric(12,2) NOT NULL,
			status text NOT NULL, updated_at timestamptz NOT NULL, version bigint NOT NULL, ingested_at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
			return
		}
		if _, err = conn.Exec(ctx, `CHECKPOINT`); err != nil {
			return
		}
		env = append(os.Environ(), "KAFKA_BROKERS="+addr, "KAFKA_TOPIC="+topic, "KAFKA_GROUP=bench-"+topic,
			"TARGET_DSN="+dsn, "TARGET_TABLE="+table, fmt.Sprintf("DLQ_TABLE=%s.dlq_%d", schema, run),
			"STORE_DSN=sqlite://"+filepath.Join(tmp, fmt.Sprintf("store-%d.db", run)), "LOG_LEVEL=WARN")
		return
	}
	createTopic := func(topic string) error {
		adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			return err
		}
		defer adm.Close()
		return createTopicReq(ctx, adm, topic, kafkaBenchPartitions)
	}
	generateConfig := func(name, generate string) (string, error) {
		i := strings.Index(string(example), "\ninput:\n")
		j := strings.Index(string(example), "\npipeline:\n")
		if i < 0 || j < i {
			return "", fmt.Errorf("%s: no input section followed by a pipeline section to replace", kafkaBenchExample)
		}
		cfg := string(example[:i]) + "\ninput:\n  label: events\n  generate:\n" + generate + string(example[j:])
		path := filepath.Join(tmp, name)
		return path, os.WriteFile(path, []byte(cfg), 0o644)
	}

	// Throughput.
	var kafkaRate, genRate []float64
	var kafkaWall, genWall []time.Duration
	genThroughput, err := generateConfig("generate-throughput.yaml", fmt.Sprintf(`    count: %d
    interval: ""
    batch_size: 500
    mapping: |
      let c = counter()
      let v = ($c %% 100) + 1
      root = {"orderId": "g-" + $c.string(), "customerEmail": "buyer@example.com",
              "amount": "%%d.%%02d".format($v, $v %% 100), "status": ["new", "paid", "shipped", "delivered"].index($v %% 4),
              "updatedAtMs": 1718000000000 + $v, "version": $v}
`, kafkaBenchEvents))
	if err != nil {
		return err
	}
	for i := 0; i < kafkaBenchReps; i++ {
		table, _, env, err := prepare()
		if err != nil {
			return err
		}
		wall, rate, err := kafkaBenchDrain(ctx, conn, exec.Command(bin, "run", genThroughput), env, table, kafkaBenchEvents, true)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		genWall, genRate = append(genWall, wall), append(genRate, rate)

		table, topic, env, err := prepare()
		if err != nil {
			return err
		}
		if err := createTopic(topic); err != nil {
			return err
		}
		if err := kafkaBenchProduce(ctx, prod, topic, kafkaBenchEvents); err != nil {
			return err
		}
		wall, rate, err = kafkaBenchDrain(ctx, conn, exec.Command(bin, "run", kafkaBenchExample), env, table, kafkaBenchEvents, false)
		if err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		kafkaWall, kafkaRate = append(kafkaWall, wall), append(kafkaRate, rate)
		slog.Info("kafka throughput repetition", "i", i, "generate_per_s", int(genRate[i]), "kafka_per_s", int(kafkaRate[i]),
			"generate_wall", genWall[i].Round(time.Millisecond), "kafka_wall", kafkaWall[i].Round(time.Millisecond))
	}

	// Latency.
	latN := int(kafkaBenchLatFor/kafkaBenchLatTick) * kafkaBenchLatBatch
	genLatency, err := generateConfig("generate-latency.yaml", fmt.Sprintf(`    count: %d
    interval: %s
    batch_size: %d
    mapping: |
      root = {"orderId": "g-" + counter().string(), "customerEmail": "buyer@example.com", "amount": "1.01",
              "status": "new", "updatedAtMs": now().ts_unix_milli(), "version": 1}
`, latN, kafkaBenchLatTick, kafkaBenchLatBatch))
	if err != nil {
		return err
	}
	table, _, env, err := prepare()
	if err != nil {
		return err
	}
	if _, _, err := kafkaBenchDrain(ctx, conn, exec.Command(bin, "run", genLatency), env, table, latN, true); err != nil {
		return fmt.Errorf("generate latency: %w", err)
	}
	genLat, err := kafkaBenchLatency(ctx, conn, table)
	if err != nil {
		return err
	}
	table, topic, env, err := prepare()
	if err != nil {
		return err
	}
	if err := createTopic(topic); err != nil {
		return err
	}
	kafkaLat, err := kafkaBenchLatencyRun(ctx, conn, prod, bin, env, table, topic, latN)
	if err != nil {
		return fmt.Errorf("kafka latency: %w", err)
	}

	gr, kr := medianF(genRate), medianF(kafkaRate)
	// The ratio is the median of the paired repetitions' ratios: each pair
	// runs back to back, so load from outside the benchmark cancels out
	// better than in a ratio of the two medians.
	pairs := make([]float64, len(genRate))
	for i := range pairs {
		pairs[i] = kafkaRate[i] / genRate[i]
	}
	ratio := medianF(pairs)
	verdict := "meets"
	if ratio < 0.7 {
		verdict = "MISSES"
	}
	fmt.Fprintf(&r.b, "## Kafka ingestion: kafka input → schema_mapping → Postgres upsert, %d events\n\n", kafkaBenchEvents)
	fmt.Fprintf(&r.b, "`bin/agentetl run %s` (kafka input on an in-process kfake cluster, %d partitions; `schema_mapping` inside `error_resolution`; postgres upsert inside `error_resolution`) against the same config with the input replaced by `generate` (batches of 500, the kafka input's batch size). ", kafkaBenchExample, kafkaBenchPartitions)
	fmt.Fprintf(&r.b, "Every event is a new order, so the upsert inserts. Rate = events / (last row's insert time - first row's insert time), read from the target's `ingested_at DEFAULT clock_timestamp()`, so process start and group join are left out; they are in the wall time (start to last row visible). Median of %d alternating runs, each verified by row count, no dead letters and the checksum of the versions.\n\n", kafkaBenchReps)
	fmt.Fprintf(&r.b, "| side | median events/s | median wall time |\n|---|---|---|\n")
	fmt.Fprintf(&r.b, "| generate (baseline) | %.0f | %.2f s |\n", gr, medianD(genWall).Seconds())
	fmt.Fprintf(&r.b, "| kafka (kfake) | %.0f | %.2f s |\n\n", kr, medianD(kafkaWall).Seconds())
	fmt.Fprintf(&r.b, "Ratio (kafka / generate, median of the %d back-to-back pairs): **%.2f** (target >= 0.70): %s.\n\n", len(pairs), ratio, verdict)
	fmt.Fprintf(&r.b, "End-to-end latency at %d events/s offered for %s (%d events; %d every %s), from the produce time (generate: generation time) carried in the event to the row's insert time in PostgreSQL:\n\n",
		int(float64(kafkaBenchLatBatch)/kafkaBenchLatTick.Seconds()), kafkaBenchLatFor, latN, kafkaBenchLatBatch, kafkaBenchLatTick)
	fmt.Fprintf(&r.b, "| side | p50 | p99 | max |\n|---|---|---|---|\n")
	fmt.Fprintf(&r.b, "| generate (baseline) | %.1f ms | %.1f ms | %.1f ms |\n", genLat[0], genLat[1], genLat[2])
	fmt.Fprintf(&r.b, "| kafka (kfake) | %.1f ms | %.1f ms | %.1f ms |\n\n", kafkaLat[0], kafkaLat[1], kafkaLat[2])
	r.sum(summaryRow{Figure: fmt.Sprintf("Kafka → schema_mapping → Postgres upsert, %d events (events/s)", kafkaBenchEvents),
		Ours: fmt.Sprintf("%.0f/s", kr), Baseline: fmt.Sprintf("generate %.0f/s", gr), Ratio: fmt.Sprintf("%.2f", ratio),
		Target: ">= 0.70", Met: ratio >= 0.7})
	r.sum(summaryRow{Figure: fmt.Sprintf("Kafka end-to-end latency p99 at %d events/s", int(float64(kafkaBenchLatBatch)/kafkaBenchLatTick.Seconds())),
		Ours: fmt.Sprintf("%.1f ms", kafkaLat[1]), Baseline: fmt.Sprintf("generate %.1f ms", genLat[1]), Ratio: "-", Target: "reported", Met: true})
	return nil
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianD(d []time.Duration) time.Duration { return median(d) }

// createTopicReq creates a topic with the given partitions.
func createTopicReq(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func kafkaBenchEvent(key string, v int, producedMs int64) []byte {
	b, _ := json.Marshal(map[string]any{"orderId": key, "customerEmail": "buyer@example.com",
		"amount": fmt.Sprintf("%d.%02d", v, v%100), "status": []string{"new", "paid", "shipped", "delivered"}[v%4],
		"updatedAtMs": producedMs, "version": v})
	return b
}

func kafkaBenchProduce(ctx context.Context, cl *kgo.Client, topic string, n int) error {
	recs := make([]*kgo.Record, 0, 10_000)
	for i := 0; i < n; i++ {
		v := i%100 + 1
		key := fmt.Sprintf("k-%d", i)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: kafkaBenchEvent(key, v, 1718000000000+int64(v))})
		if len(recs) == cap(recs) || i == n-1 {
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

// kafkaBenchDrain starts the engine, waits until the table holds want rows,
// verifies them and returns the wall time to the last row and the rate
// between the first and the last row's insert times. exits says whether
// the engine ends on its own (generate); otherwise it is stopped with
// SIGTERM.
func kafkaBenchDrain(ctx context.Context, conn *pgx.Conn, cmd *exec.Cmd, env []string, table string, want int, exits bool) (time.Duration, float64, error) {
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopEngine := func() error {
		if exits {
			select {
			case err := <-done:
				return err
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				return fmt.Errorf("engine did not exit\n%s", tail(stderr.String(), 2000))
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("engine did not stop on SIGTERM\n%s", tail(stderr.String(), 2000))
		}
	}
	var wall time.Duration
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			_ = cmd.Process.Kill()
			return 0, 0, err
		}
		if n >= want {
			wall = time.Since(start)
			break
		}
		select {
		case err := <-done:
			if !exits || err != nil {
				return 0, 0, fmt.Errorf("engine ended with %d of %d rows: %v\n%s", n, want, err, tail(stderr.String(), 2000))
			}
			done <- err
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return 0, 0, fmt.Errorf("%d of %d rows after 5 minutes\n%s", n, want, tail(stderr.String(), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stopEngine(); err != nil {
		return 0, 0, fmt.Errorf("%w\n%s", err, tail(stderr.String(), 2000))
	}
	var n int
	var span float64
	var bad int
	var dlq *string
	if err := conn.QueryRow(ctx, `SELECT count(*), extract(epoch FROM max(ingested_at) - min(ingested_at)),
		count(*) FILTER (WHERE amount <> (version || '.' || lpad((version % 100)::text, 2, '0'))::numeric),
		to_regclass($1)::text FROM `+table, strings.Replace(table, ".orders_", ".dlq_", 1)).Scan(&n, &span, &bad, &dlq); err != nil {
		return 0, 0, err
	}
	if n != want || bad != 0 {
		return 0, 0, fmt.Errorf("%s: %d rows (want %d), %d with wrong values", table, n, want, bad)
	}
	if dlq != nil {
		var d int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+*dlq).Scan(&d); err != nil || d != 0 {
			return 0, 0, fmt.Errorf("%s: %d dead letters (%v)", *dlq, d, err)
		}
	}
	if span <= 0 {
		return 0, 0, fmt.Errorf("%s: all rows inserted at once; no rate", table)
	}
	return wall, float64(want) / span, nil
}

// kafkaBenchLatencyRun starts the engine on an empty topic, waits until it
// has joined, then produces at the fixed offered load and reads the
// latencies.
func kafkaBenchLatencyRun(ctx context.Context, conn *pgx.Conn, prod *kgo.Client, bin string, env []string, table, topic string, n int) ([3]float64, error) {
	var out [3]float64
	cmd := exec.Command(bin, "run", kafkaBenchExample)
	// One warm-up event tells when the consumer is live.
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("warm-up"), Value: kafkaBenchEvent("warm-up", 1, time.Now().UnixMilli())}).FirstErr(); err != nil {
		return out, err
	}
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return out, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	for deadline := time.Now().Add(60 * time.Second); ; {
		var c int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&c); err != nil {
			return out, err
		}
		if c > 0 {
			break
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("engine did not consume the warm-up event\n%s", tail(stderr.String(), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM `+table); err != nil {
		return out, err
	}
	tick := time.NewTicker(kafkaBenchLatTick)
	defer tick.Stop()
	sent := 0
	for sent < n {
		<-tick.C
		recs := make([]*kgo.Record, 0, kafkaBenchLatBatch)
		now := time.Now().UnixMilli()
		for j := 0; j < kafkaBenchLatBatch && sent < n; j++ {
			key := fmt.Sprintf("l-%d", sent)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: kafkaBenchEvent(key, 1, now)})
			sent++
		}
		// Produced without waiting, as a producer application would.
		for _, rec := range recs {
			prod.Produce(ctx, rec, nil)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		return out, err
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		var c int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&c); err != nil {
			return out, err
		}
		if c >= n {
			break
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%d of %d latency events arrived\n%s", c, n, tail(stderr.String(), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return kafkaBenchLatency(ctx, conn, table)
}

// kafkaBenchLatency reads p50, p99 and max of ingested_at - updated_at in
// milliseconds.
func kafkaBenchLatency(ctx context.Context, conn *pgx.Conn, table string) ([3]float64, error) {
	var out [3]float64
	err := conn.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
		FROM (SELECT extract(epoch FROM ingested_at - updated_at) * 1000 AS ms FROM `+table+`) l`).Scan(&out[0], &out[1], &out[2])
	return out, err
}
