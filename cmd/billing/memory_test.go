package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/internal/testenv"
)

// asBinary, set in a child's environment, makes this test binary run main
// instead of the tests: `billing` as its own process, whose memory can be
// read apart from the test's.
const asBinary = "BILLING_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(asBinary) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestAPIMemoryUnderSlowUploads starts `billing api` as a process with the
// default WEBHOOK_MAX_INFLIGHT and WEBHOOK_MAX_BODY_BYTES and opens 1,000
// connections at once, each declaring a 1 MiB body and trickling it. The
// webhooks past the cap get 503 before their body is read; the others are
// read in full (and refused: they are signed with another secret, so no
// broker is needed). The api's peak RSS must stay far below what 1,000
// bodies would take.
func TestAPIMemoryUnderSlowUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections for several seconds")
	}
	const (
		conns     = 1000
		bodyBytes = api.DefaultMaxBodyBytes
		chunks    = 16
		interval  = 250 * time.Millisecond // 1 MiB in 4s per upload
		rssBound  = 256                    // MiB; 1,000 bodies would be 1,000
	)
	addr := testenv.FreeAddr(t)
	child := exec.Command(os.Args[0], "api")
	child.Env = []string{
		asBinary + "=1",
		"HTTP_ADDR=" + addr,
		"METRICS_ADDR=" + testenv.FreeAddr(t),
		"AMQP_URL=amqp://guest:guest@127.0.0.1:1/", // no broker: nothing here is published
		"BILLING_NAMESPACE=" + testenv.Namespace(t),
		"STRIPE_WEBHOOK_SECRET=whsec_memory_test",
		"LOG_LEVEL=error",
		// Uploads slow but within the body timeout, however loaded the
		// machine: this measures memory (api.TestWebhookSlowClients the
		// timeout itself).
		"WEBHOOK_BODY_TIMEOUT=1m",
	}
	var logs testenv.SyncBuffer
	child.Stdout, child.Stderr = &logs, &logs
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	t.Cleanup(func() {
		_ = child.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = child.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("api log:\n%s", logs.String())
		}
	})
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, _ := httpGet("http://" + addr + "/healthz")
		return code == http.StatusOK
	}, "billing api never served /healthz")
	before := testenv.ProcStatusMiB(t, child.Process.Pid, "VmRSS")

	body := bytes.Repeat([]byte("a"), bodyBytes)
	signature := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_someone_else"}).Header
	head := []byte("POST /webhooks/stripe HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(bodyBytes) + "\r\nStripe-Signature: " + signature + "\r\n\r\n")

	var (
		mu      sync.Mutex
		answers = map[string]int{} // "status message", or the transport error
	)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			got := slowUpload(addr, head, body, chunks, interval)
			mu.Lock()
			answers[got]++
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	peak := testenv.ProcStatusMiB(t, child.Process.Pid, "VmHWM")

	busy := answers["503 too many webhooks in flight, retry later"]
	read := answers["400 no valid signature"]
	t.Logf("billing api under %d slow 1 MiB uploads (WEBHOOK_MAX_INFLIGHT %d): peak RSS %.1f MiB (%.1f MiB before), "+
		"%d read in full and refused, %d answered 503 before their body, in %s; all answers: %v",
		conns, api.DefaultMaxInFlight, peak, before, read, busy, took.Round(100*time.Millisecond), answers)
	if read+busy != conns {
		t.Errorf("answers %v: want every upload answered 400 (read in full) or 503 (over the cap)", answers)
	}
	if busy == 0 || read == 0 || read > conns-busy {
		t.Errorf("%d read, %d refused at the cap: want both", read, busy)
	}
	if peak >= rssBound {
		t.Errorf("peak RSS %.1f MiB, want under %d MiB", peak, rssBound)
	}
}

// slowUpload sends head, then body in chunks with a pause between them,
// until the server answers; it returns "status message" of the JSON
// answer or the transport error.
func slowUpload(addr string, head, body []byte, chunks int, interval time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(25 * time.Second))
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- "read: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var msg struct{ Error string }
		_ = json.Unmarshal(b, &msg)
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, msg.Error)
	}()
	if _, err := c.Write(head); err != nil {
		return "write: " + err.Error()
	}
	size := len(body) / chunks
	for i := range chunks {
		select {
		case got := <-answered:
			return got // answered before the whole body: stop sending
		case <-time.After(interval):
		}
		if _, err := c.Write(body[i*size : (i+1)*size]); err != nil {
			break // the server closed after answering; the answer is read below
		}
	}
	return <-answered
}
