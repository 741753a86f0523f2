package orchestrator

import (
	"regexp"
	"strings"
)

// envRefPattern matches ${NAME} and ${NAME:default}, not Bloblang's ${! … }.
var envRefPattern = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}`)

// ExpandEnv resolves ${NAME} and ${NAME:default} in s as the engine does
// when it reads a config: a variable that is unset or empty takes the
// default when there is one. It returns the names that are unset and have
// no default; their references are left as written.
func ExpandEnv(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var missing []string
	out := envRefPattern.ReplaceAllStringFunc(s, func(ref string) string {
		sub := envRefPattern.FindStringSubmatch(ref)
		v, ok := lookup(sub[1])
		switch {
		case ok && v != "":
			return v
		case strings.Contains(ref, ":"):
			return sub[2]
		case ok:
			return ""
		}
		missing = append(missing, sub[1])
		return ref
	})
	return out, missing
}
