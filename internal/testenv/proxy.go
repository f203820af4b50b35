package testenv

import (
	"strings"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy starts an in-process toxiproxy named name to upstream (host:port),
// stopped when t ends: Stop cuts every connection and refuses new ones,
// Start lets them through again. The real server is never touched.
func Proxy(t testing.TB, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// AMQPVia is the test broker's URL (AMQPURL) through a proxy at addr.
func AMQPVia(addr string) string {
	u := AMQPURL()
	i := strings.Index(u, "@")
	j := strings.Index(u[i:], "/")
	return u[:i+1] + addr + u[i+j:]
}
