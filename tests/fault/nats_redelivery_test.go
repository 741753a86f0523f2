package fault_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/bus"
	"github.com/agentetl/agentetl/internal/testpg"
	"github.com/agentetl/agentetl/internal/testutil"
)

// natsResilientConsumerYAML consumes events and upserts them through
// error_resolution, dead letters in a table.
const natsResilientConsumerYAML = `
http:
  enabled: false
input:
  nats_jetstream:
    urls: [ "${BUS_URL}" ]
    durable: fault_poison_consumer
    filter_subject: ${FAULT_SUBJECT}
    ack_wait: 2s
output:
  error_resolution:
    pipeline_id: fault-nats-poison
    store: ""
    output:
      postgres:
        dsn: ${TARGET_DSN}
        table: events_dst
        mode: upsert
    dead_letter:
      postgres:
        dsn: ${TARGET_DSN}
        table: dlq
    batching:
      count: 100
      period: 50ms
logger:
  level: WARN
  format: logfmt
`

// deadLetterDDL is the table error_resolution creates for dead letters;
// the test creates it first so it can hold a dead-letter write.
const deadLetterDDL = `CREATE TABLE dlq (
	id text PRIMARY KEY, pipeline_id text NOT NULL DEFAULT '', component text NOT NULL DEFAULT '',
	payload jsonb, payload_raw bytea, metadata jsonb, category text NOT NULL, fingerprint text NOT NULL,
	template text NOT NULL DEFAULT '', error text NOT NULL, code text NOT NULL DEFAULT '',
	attempts integer NOT NULL DEFAULT 0, schema_version text NOT NULL DEFAULT '', error_id text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(), replayed_at timestamptz, replay_count integer NOT NULL DEFAULT 0)`

// TestNATSRedeliveredPoison: a consumer of the bus dead-letters a poison
// event, and dies (kill -9) after the dead letter is stored but before the
// event is acknowledged: the dead-letter insert is held by a trigger when
// the signal lands and released afterwards, so it commits. JetStream
// redelivers the event to the next consumer, which must recognise the
// dead letter it already stored: one dead letter per poison event. (The
// dead letter's id leaves out nats_num_delivered, which a redelivery
// increments: agents/resolution.VolatileMetaKeys.)
func TestNATSRedeliveredPoison(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const events, poisonSeq = 2000, 1234
	db := testpg.NewSchema(t)
	execSQL(t, db.Pool, `CREATE TABLE events_dst (event_id uuid PRIMARY KEY, seq bigint NOT NULL CHECK (seq <> `+fmt.Sprint(poisonSeq)+`), body text)`)
	execSQL(t, db.Pool, deadLetterDDL)
	execSQL(t, db.Pool, `CREATE TABLE fault_gate (armed boolean NOT NULL)`)
	execSQL(t, db.Pool, `INSERT INTO fault_gate VALUES (true)`)
	execSQL(t, db.Pool, `CREATE FUNCTION `+db.Schema+`.hold_dead_letter() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			WHILE (SELECT armed FROM `+db.Schema+`.fault_gate) LOOP PERFORM pg_sleep(0.02); END LOOP;
			RETURN NULL;
		END $$`)
	execSQL(t, db.Pool, `CREATE TRIGGER hold AFTER INSERT ON dlq FOR EACH ROW EXECUTE FUNCTION `+db.Schema+`.hold_dead_letter()`)

	natsDir, port := t.TempDir(), testutil.FreePort(t)
	srv, err := bus.StartEmbedded(natsDir, port)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	subject := "agentetl.fault." + testpg.RandName("poison")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, url, bus.WithName("fault-test-publisher"))
	require.NoError(t, err)
	defer b.Close()
	var src []string
	for i := 1; i <= events; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		src = append(src, id)
		_, err := b.JetStream().Publish(ctx, subject, []byte(fmt.Sprintf(`{"event_id":%q,"seq":%d,"body":"event %d"}`, id, i, i)),
			jetstream.WithMsgID(id))
		require.NoError(t, err)
	}

	cfg := filepath.Join(t.TempDir(), "consumer.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(natsResilientConsumerYAML), 0o644))
	app := testpg.RandName("fault_poison_")
	env := map[string]string{"BUS_URL": url, "FAULT_SUBJECT": subject, "TARGET_DSN": withApp(db.DSN, app)}
	p := startEngine(t, env, "run", cfg)
	waitHeld(t, db.Pool, app, p, 60*time.Second)
	p.kill9(t)
	setGate(t, db.Pool, db.Schema, false)
	waitUntil(t, 15*time.Second, nil, "the held dead-letter insert committed", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM dlq`) == 1 && backends(t, db.Pool, app) == 0
	})

	p = startEngine(t, env, "run", cfg)
	waitUntil(t, 60*time.Second, p, "every good event in the target", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM events_dst`) >= events-1
	})
	// Past ack_wait: the unacknowledged poison event has been redelivered.
	waitUntil(t, 30*time.Second, p, "the poison event handled again and acknowledged", func() bool {
		nc, err := nats.Connect(url)
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		c, err := js.Consumer(ctx, bus.StreamName, "fault_poison_consumer")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
	p.stop(t, 20*time.Second)

	dst := queryStrings(t, db.Pool, `SELECT event_id::text FROM events_dst`)
	dead := queryStrings(t, db.Pool, `SELECT payload->>'event_id' FROM dlq`)
	t.Log("dead letters:", queryStrings(t, db.Pool, `SELECT id || ' ' || metadata::text FROM dlq`))
	report(t, "nats_redelivered_poison", start, account(src, dst, dead))
}
