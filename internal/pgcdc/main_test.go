package pgcdc_test

import (
	"os"
	"testing"

	"github.com/agentetl/agentetl/internal/testpg"
)

// TestMain stops the private PostgreSQL cluster the change data capture
// tests start (testpg.LogicalDSN) once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	testpg.StopClusters()
	os.Exit(code)
}
