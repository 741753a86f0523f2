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

// natsPublisherYAML reads the events table and publishes each row on the
// bus with its event id as the JetStream message id. The sleep (once per
// page) keeps the publisher busy long enough for the restart to land in
// the middle of it.
const natsPublisherYAML = `
http:
  enabled: false
input:
  postgres:
    dsn: ${SOURCE_DSN}
    table: events
    key_column: seq
    page_size: 500
    checkpoint_id: fault-nats-publisher
    checkpoint_store: ${STORE_DSN}
pipeline:
  processors:
    - sleep:
        duration: '${! if batch_index() == 0 { "50ms" } else { "0s" } }'
output:
  nats_jetstream:
    urls: [ "${BUS_URL}" ]
    subject: ${FAULT_SUBJECT}
    msg_id: '${! json("event_id") }'
    timeout: 2s
    max_in_flight: 64
logger:
  level: WARN
  format: logfmt
`

// natsConsumerYAML consumes the subject with a durable consumer and
// upserts every event by its id.
const natsConsumerYAML = `
http:
  enabled: false
input:
  nats_jetstream:
    urls: [ "${BUS_URL}" ]
    durable: ${FAULT_DURABLE}
    filter_subject: ${FAULT_SUBJECT}
    ack_wait: 2s
    max_ack_pending: 1000
output:
  postgres:
    dsn: ${TARGET_DSN}
    table: events_dst
    mode: upsert
    max_connect_attempts: 0
    batching:
      count: 500
      period: 100ms
logger:
  level: WARN
  format: logfmt
`

// TestNATSRestart: events go from a PostgreSQL table through a publishing
// engine (nats_jetstream output, event id as message id) to the bus, and
// from the bus through a consuming engine (durable nats_jetstream input)
// into PostgreSQL, upserted by event id. The bus is an embedded JetStream
// server with file storage; it is shut down and started again on the same
// port and directory while both engines have events in flight. Every event
// must arrive, be stored on the bus once, and change the target once: an
// audit trigger records every insert or update of a target row.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const events = 30_000
	db := testpg.NewSchema(t)
	execSQL(t, db.Pool, `CREATE TABLE events (seq bigint PRIMARY KEY, event_id uuid NOT NULL UNIQUE, kind text, body text)`)
	execSQL(t, db.Pool, `INSERT INTO events SELECT g, md5('event' || g)::uuid, 'kind' || (g % 17), 'payload ✓ ' || md5(g::text)
		FROM generate_series(1, $1::int) g`, events)
	execSQL(t, db.Pool, `CREATE TABLE events_dst (event_id uuid PRIMARY KEY, seq bigint NOT NULL, kind text, body text)`)
	execSQL(t, db.Pool, `CREATE TABLE applied (event_id uuid NOT NULL, op text NOT NULL)`)
	execSQL(t, db.Pool, `CREATE FUNCTION `+db.Schema+`.audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO `+db.Schema+`.applied VALUES (NEW.event_id, TG_OP); RETURN NULL; END $$`)
	execSQL(t, db.Pool, `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON events_dst FOR EACH ROW EXECUTE FUNCTION `+db.Schema+`.audit()`)

	natsDir, port := t.TempDir(), testutil.FreePort(t)
	srv, err := bus.StartEmbedded(natsDir, port)
	require.NoError(t, err)
	t.Cleanup(func() {
		if srv != nil {
			srv.Shutdown()
		}
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	subject := "agentetl.fault." + testpg.RandName("ev")

	cfgDir := t.TempDir()
	pubCfg, conCfg := filepath.Join(cfgDir, "publisher.yaml"), filepath.Join(cfgDir, "consumer.yaml")
	require.NoError(t, os.WriteFile(pubCfg, []byte(natsPublisherYAML), 0o644))
	require.NoError(t, os.WriteFile(conCfg, []byte(natsConsumerYAML), 0o644))
	consumer := startEngine(t, map[string]string{"BUS_URL": url, "FAULT_SUBJECT": subject, "FAULT_DURABLE": "fault_consumer",
		"TARGET_DSN": db.DSN}, "run", conCfg)
	publisher := startEngine(t, map[string]string{"BUS_URL": url, "FAULT_SUBJECT": subject, "SOURCE_DSN": db.DSN,
		"STORE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "store.db")}, "run", pubCfg)

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stored := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, bus.StreamName)
		if err != nil {
			return -1
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return -1
		}
		return int64(info.State.Subjects[subject])
	}

	waitUntil(t, 60*time.Second, publisher, "a quarter of the events on the bus and some in the target", func() bool {
		require.False(t, consumer.exited(), "the consumer stopped\n%s", consumer.tail())
		return stored() >= events/4 && queryInt(t, db.Pool, `SELECT count(*) FROM events_dst`) > 0
	})
	atStop, landed := stored(), queryInt(t, db.Pool, `SELECT count(*) FROM events_dst`)
	srv.Shutdown()
	srv = nil
	time.Sleep(time.Second)
	srv, err = bus.StartEmbedded(natsDir, port)
	require.NoError(t, err, "restart the embedded NATS server on the same port and directory")
	t.Logf("NATS restarted with %d of %d events stored and %d in the target", atStop, events, landed)
	require.Less(t, atStop, int64(events), "the restart landed while events were still being published")
	require.False(t, publisher.exited(), "the publisher must ride out the restart\n%s", publisher.tail())

	code := publisher.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the publisher must finish after the restart\n%s", publisher.tail())
	waitUntil(t, 90*time.Second, consumer, "every event in the target", func() bool {
		return queryInt(t, db.Pool, `SELECT count(*) FROM events_dst`) >= events
	})
	// Past the consumer's ack_wait, so an event whose acknowledgement was
	// lost with the server has been redelivered by now.
	time.Sleep(3500 * time.Millisecond)
	consumer.stop(t, 30*time.Second)

	require.EqualValues(t, events, stored(), "every event is stored on the bus once (message id de-duplication)")
	src := queryStrings(t, db.Pool, `SELECT event_id::text FROM events`)
	// Each audit row is one effect on the target: a second insert or an
	// update of an event already applied is a duplicate effect.
	effects := queryStrings(t, db.Pool, `SELECT event_id::text FROM applied`)
	report(t, "nats_restart", start, account(src, effects, nil))
	require.EqualValues(t, events, queryInt(t, db.Pool, `SELECT count(*) FROM events_dst`))
	_, want := orderedMD5(t, db.Pool, `SELECT seq AS id, event_id, kind, body FROM events`)
	_, got := orderedMD5(t, db.Pool, `SELECT seq AS id, event_id, kind, body FROM events_dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
