package bus

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultEmbeddedPort is where the embedded server listens when no port is
// given: next to, not on, the standard 4222, so a system NATS keeps working.
const DefaultEmbeddedPort = 4223

// Embedded is a JetStream-enabled NATS server inside this process, bound to
// loopback only, storing streams under its data directory so events survive
// a restart of the process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a server storing JetStream data under dir. port 0
// picks a free port; -1 uses DefaultEmbeddedPort.
func StartEmbedded(dir string, port int) (*Embedded, error) {
	if port < 0 {
		port = DefaultEmbeddedPort
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("bus: embedded data dir: %w", err)
	}
	opts := &server.Options{
		ServerName: "agentetl-embedded",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		// The embedded server only ever serves this machine.
		HTTPPort: 0,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("bus: embedded server did not become ready within 10s (is the port taken?)")
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
