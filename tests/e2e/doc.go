// Package e2e holds end-to-end tests of the agentetl binary: they build
// cmd/agentetl once, run it as a real process against the PostgreSQL named
// by PG_DSN, kill it with SIGKILL and check what it left behind in the
// target table and the checkpoint store. The tests live in package e2e_test;
// this file only gives the directory a non-test package.
package e2e
