package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// StripeMockVersion is the stripe-mock the tests run (pinned in go.mod).
const StripeMockVersion = "v0.183.0"

// stripeMockBinary builds stripe-mock once per test process; the binary
// is cached in the temp directory by version, so parallel test packages
// share one build.
var stripeMockBinary = sync.OnceValues(func() (string, error) {
	path := filepath.Join(os.TempDir(), "billing-stripe-mock-"+StripeMockVersion)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return path, nil
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testenv: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	tmp, err := os.CreateTemp(os.TempDir(), "billing-stripe-mock-build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-o", tmp.Name(), "github.com/stripe/stripe-mock")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: build stripe-mock %s: %w\n%s", StripeMockVersion, err, out)
	}
	// rename is atomic: a concurrent package sees no binary or a whole one.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
})

// StripeMock starts stripe-mock on a free loopback port for t, stopped when
// t ends, and returns its base URL (for STRIPE_API_BASE). Its event list
// serves one fixed fixture event.
func StripeMock(t testing.TB) string {
	t.Helper()
	bin, err := stripeMockBinary()
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-http-port", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("testenv: start stripe-mock: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/events?limit=1", nil)
		req.SetBasicAuth("sk_test_123", "")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("testenv: stripe-mock exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: stripe-mock not answering on %s: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StripeNotFound serves, until t ends, an API that answers every request
// as Stripe does for an id it does not know (404, resource_missing), and
// returns its base URL. It is a fake for that one role: stripe-mock
// answers any well-formed id with its fixture, so it cannot play it.
func StripeNotFound(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		id := path.Base(r.URL.Path)
		fmt.Fprintf(w, `{"error":{"code":"resource_missing","doc_url":"https://stripe.com/docs/error-codes/resource-missing","message":"No such event: '%s'","param":"id","type":"invalid_request_error"}}`, id)
	}))
	t.Cleanup(s.Close)
	return s.URL
}
