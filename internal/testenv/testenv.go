// Package testenv gives each test its own slice of the real RabbitMQ and
// MariaDB: a fresh namespace of exchanges and queues, a fresh database,
// both removed when the test ends. Addresses come from TEST_AMQP_URL,
// TEST_RABBITMQ_API and TEST_MYSQL_DSN, defaulting to the local servers;
// the serial tests restart the node through TEST_RABBITMQ_CTL and
// TEST_RABBITMQ_START (scripts/rabbitmq4.sh env prints all four for the
// RabbitMQ 4 node).
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
)

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// AMQPURL is the broker the tests use.
func AMQPURL() string { return getenv("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/") }

// ManagementURL is the RabbitMQ management API base, with credentials.
func ManagementURL() string { return getenv("TEST_RABBITMQ_API", "http://guest:guest@127.0.0.1:15672") }

// RabbitPrometheusAddr is where the broker's prometheus plugin answers
// (host:port).
func RabbitPrometheusAddr() string { return getenv("TEST_RABBITMQ_PROMETHEUS", "127.0.0.1:15692") }

// AMQPAddr is the host:port of AMQPURL, where the serial tests wait for
// the node they restart.
func AMQPAddr() string {
	u, err := url.Parse(AMQPURL())
	if err != nil || u.Port() == "" {
		return "127.0.0.1:5672"
	}
	return u.Host
}

// RabbitCtl is the command line of rabbitmqctl for the test broker's node,
// args appended: TEST_RABBITMQ_CTL (space-separated, such as
// "scripts/rabbitmq4.sh ctl"), by default the machine's rabbitmqctl.
func RabbitCtl(args ...string) []string {
	return append(strings.Fields(getenv("TEST_RABBITMQ_CTL", "rabbitmqctl")), args...)
}

// RabbitStart is the command line that starts the test broker's node
// again after `rabbitmqctl stop`: TEST_RABBITMQ_START, by default
// `rabbitmq-server -detached`.
func RabbitStart() []string {
	return strings.Fields(getenv("TEST_RABBITMQ_START", "rabbitmq-server -detached"))
}

// randomName returns prefix_<12 hex>, safe as a namespace or database name.
func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + strings.ToLower(hex.EncodeToString(b))
}

// SyncBuffer is a bytes.Buffer safe for a logger's concurrent writes, for
// tests that read what a component logged.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
