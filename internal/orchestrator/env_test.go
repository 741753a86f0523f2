package orchestrator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// ExpandEnv follows the engine: ${NAME}, ${NAME:default} (also for an
// empty value), Bloblang's ${! … } untouched, unset names reported and
// left as written.
func TestExpandEnv(t *testing.T) {
	env := map[string]string{"DSN": "postgres://u@h/db", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	out, missing := ExpandEnv(`a=${DSN} b=${EMPTY:x} c=${EMPTY} d=${NOPE:def} e=${! meta("k") } f=${GONE} $DSN`, lookup)
	require.Equal(t, `a=postgres://u@h/db b=x c= d=def e=${! meta("k") } f=${GONE} $DSN`, out)
	require.Equal(t, []string{"GONE"}, missing)
	out, missing = ExpandEnv("plain", lookup)
	require.Equal(t, "plain", out)
	require.Empty(t, missing)
}
