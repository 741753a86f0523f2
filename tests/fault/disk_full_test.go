package fault_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/testpg"
)

// diskFullYAML copies src into dst through error_resolution with a JSON
// Lines dead letter at ${DL_PATH}.
const diskFullYAML = `
http:
  enabled: false
input:
  postgres:
    dsn: ${SOURCE_DSN}
    table: src
    page_size: 1000
    checkpoint_id: fault-disk-full
    checkpoint_store: ${STORE_DSN}
output:
  error_resolution:
    pipeline_id: fault-disk-full
    store: ""
    output:
      postgres:
        dsn: ${TARGET_DSN}
        table: dst
        mode: upsert
    dead_letter:
      file:
        path: ${DL_PATH}
logger:
  level: INFO
  format: logfmt
`

// fullDevice mounts a 16 KiB tmpfs and fills it, so that any write to a file
// on it fails with ENOSPC (creating an empty file still works).
func fullDevice(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the disk-full scenario mounts a tiny tmpfs, which needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k,nr_inodes=64,mode=0777", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the disk-full scenario (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			require.ErrorContains(t, err, "no space left on device")
			break
		}
	}
	require.NoError(t, f.Close())
	return dir
}

// deadLetterFileKeys reads the "id" of every payload in a JSON Lines dead
// letter file.
func deadLetterFileKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var dl struct {
			Payload struct {
				ID json.Number `json:"id"`
			} `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &dl), "dead letter line %q", sc.Text())
		keys = append(keys, dl.Payload.ID.String())
	}
	require.NoError(t, sc.Err())
	return keys
}

// TestDeadLetterDiskFull: the file dead letter of an error_resolution
// output is on a full device. The load must say so clearly (ENOSPC, naming
// the dead letter) and acknowledge nothing whose dead letters were not
// stored: the checkpoint never passes the first page with a poison row.
// Run again with the dead letter on a healthy disk, it resumes and every
// source row is accounted for, in the target or in the file, once.
func TestDeadLetterDiskFull(t *testing.T) {
	t.Parallel()
	start := time.Now()
	const rows = 20_000
	full := fullDevice(t)
	db := testpg.NewSchema(t)
	seedSource(t, db.Pool, "src", rows, true)
	createTarget(t, db.Pool, "dst", true)

	store := "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	cfg := filepath.Join(t.TempDir(), "disk-full.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(diskFullYAML), 0o644))
	badPath := filepath.Join(full, "dead-letters.jsonl")
	env := map[string]string{"SOURCE_DSN": db.DSN, "TARGET_DSN": db.DSN, "STORE_DSN": store, "DL_PATH": badPath}

	p := startEngine(t, env, "run", cfg)
	waitUntil(t, 60*time.Second, p, "a dead-letter write failing with ENOSPC", func() bool {
		return strings.Contains(p.output(), "no space left on device")
	})
	// Let it try again a few times: the failure must keep the pages back.
	time.Sleep(1500 * time.Millisecond)
	require.False(t, p.exited(), "a full dead-letter disk is not a reason to exit with rows unaccounted for\n%s", p.tail())
	p.stop(t, 20*time.Second)
	out := p.output()
	require.Containsf(t, out, "to the dead letter destination: write dead letter file", "the error names the dead letter\n%s", p.tail())
	require.Containsf(t, out, badPath+": no space left on device", "the error names the file and ENOSPC\n%s", p.tail())
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "no space left on device") {
			t.Logf("the error: %s", line)
			break
		}
	}
	st, err := os.Stat(badPath)
	require.NoError(t, err)
	require.Zero(t, st.Size(), "nothing reached the full device")
	key, found := checkpointKey(t, store, "fault-disk-full")
	require.Falsef(t, found, "the checkpoint moved to key %d although the first page's poison row was never stored anywhere", key)
	t.Logf("phase 1 stopped after %s with %d rows in the target and no checkpoint",
		time.Since(start).Round(time.Millisecond), queryInt(t, db.Pool, `SELECT count(*) FROM dst`))

	goodPath := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	env["DL_PATH"] = goodPath
	p = startEngine(t, env, "run", cfg)
	code := p.waitExit(t, 120*time.Second)
	require.Equalf(t, 0, code, "the rerun with a healthy dead letter must finish\n%s", p.tail())

	src := queryStrings(t, db.Pool, `SELECT id::text FROM src`)
	dst := queryStrings(t, db.Pool, `SELECT id::text FROM dst`)
	dead := deadLetterFileKeys(t, goodPath)
	report(t, "dead_letter_disk_full", start, account(src, dst, dead))
	require.ElementsMatch(t, queryStrings(t, db.Pool, `SELECT id::text FROM src WHERE `+poisonWhere), dead,
		"exactly the poison rows are dead letters")
	_, want := orderedMD5(t, db.Pool, `SELECT * FROM src WHERE NOT (`+poisonWhere+`)`)
	_, got := orderedMD5(t, db.Pool, `SELECT * FROM dst`)
	require.Equal(t, want, got, "the target's content differs from the source's")
}
