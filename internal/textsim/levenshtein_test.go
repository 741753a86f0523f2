package textsim_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentetl/agentetl/internal/textsim"
)

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3},
		{"email_addr", "email_address", 3}, {"ünï", "uni", 2}, {"same", "same", 0},
	} {
		require.Equal(t, c.d, textsim.Levenshtein([]rune(c.a), []rune(c.b)), "%q %q", c.a, c.b)
		require.Equal(t, c.d, textsim.Levenshtein([]rune(c.b), []rune(c.a)), "symmetric %q %q", c.a, c.b)
	}
}
