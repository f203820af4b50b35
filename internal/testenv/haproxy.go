package testenv

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxyConfigFile is the balancer's configuration, relative to the
// repository root: docker-compose.yml's haproxy service runs it, and so
// does StartHAProxy, with its lines marked "tests:" swapped.
const HAProxyConfigFile = "deploy/haproxy/haproxy.cfg"

// The lines of HAProxyConfigFile that HAProxyConfig swaps, each marked
// "# tests: ..." in the file.
const (
	haproxyWebhookBind = "bind :8080"
	haproxyStatsBind   = "bind :8404"
	haproxyServers     = "server-template api "
)

// HAProxyConfig returns the configuration template (the content of
// HAProxyConfigFile) for apis on loopback: the webhook frontend bound to
// webhookAddr, the stats frontend to statsAddr, and one server per api,
// named api1, api2, ... as the template's server-template names its
// slots. Every other line stays as it is; a marked line missing or found
// twice is an error, so the file cannot drift from what the tests run.
func HAProxyConfig(template, webhookAddr, statsAddr string, apis []string) (string, error) {
	swaps := map[string]func(indent string) string{
		haproxyWebhookBind: func(in string) string { return in + "bind " + webhookAddr },
		haproxyStatsBind:   func(in string) string { return in + "bind " + statsAddr },
		haproxyServers: func(in string) string {
			lines := make([]string, len(apis))
			for i, addr := range apis {
				lines[i] = fmt.Sprintf("%sserver api%d %s", in, i+1, addr)
			}
			return strings.Join(lines, "\n")
		},
	}
	found := map[string]int{}
	lines := strings.Split(template, "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		for prefix, swap := range swaps {
			if strings.HasPrefix(trimmed, prefix) {
				if !strings.Contains(trimmed, "# tests:") {
					return "", fmt.Errorf("testenv: haproxy config: %q lacks its \"# tests:\" mark", trimmed)
				}
				found[prefix]++
				lines[i] = swap(line[:len(line)-len(strings.TrimLeft(line, " \t"))])
			}
		}
	}
	for prefix := range swaps {
		if found[prefix] != 1 {
			return "", fmt.Errorf("testenv: haproxy config: %d lines start with %q, want 1", found[prefix], prefix)
		}
	}
	return strings.Join(lines, "\n"), nil
}

// RepoFile reads a file of the repository by its path from the root (the
// directory of go.mod above the working directory).
func RepoFile(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// HAProxy is a running haproxy in front of a test's apis.
type HAProxy struct {
	// URL is the webhook frontend, http://127.0.0.1:port.
	URL string
	// StatsURL is the stats frontend.
	StatsURL string
	// Log is what haproxy logged: one line per request, and every server
	// state change.
	Log *SyncBuffer
}

// StartHAProxy runs Debian's haproxy with HAProxyConfig for apis (their
// HTTP_ADDRs) on free loopback ports, stopped when t ends. It skips t
// when haproxy is not installed (.ci/run installs it).
func StartHAProxy(t testing.TB, apis []string) *HAProxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/haproxy"); statErr != nil {
			t.Skip("haproxy is not installed (Debian's package haproxy; .ci/run installs it)")
		}
		bin = "/usr/sbin/haproxy"
	}
	webhook, stats := FreeAddr(t), FreeAddr(t)
	cfg, err := HAProxyConfig(string(RepoFile(t, HAProxyConfigFile)), webhook, stats, apis)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &HAProxy{URL: "http://" + webhook, StatsURL: "http://" + stats, Log: &SyncBuffer{}}
	cmd := exec.Command(bin, "-db", "-f", path) // -db: in the foreground
	cmd.Stdout, cmd.Stderr = h.Log, h.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy log (last 4000 bytes):\n%s", tailString(h.Log.String(), 4000))
		}
	})
	Eventually(t, 10*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("testenv: haproxy exited at start:\n%s", h.Log.String())
		default:
		}
		_, err := h.ServerStates()
		return err == nil
	}, "haproxy serves its stats on %s", stats)
	return h
}

// ServerStates maps each api server (api1, api2, ...) to its state as
// haproxy's stats say it: UP, DOWN, "UP 1/2" (going down), "DOWN 1/2"
// (coming up), MAINT.
func (h *HAProxy) ServerStates() (map[string]string, error) {
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(h.StatsURL + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("haproxy stats: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("haproxy stats: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if row[col["pxname"]] == "apis" && strings.HasPrefix(row[col["svname"]], "api") {
			out[row[col["svname"]]] = row[col["status"]]
		}
	}
	return out, nil
}

// WaitServer waits until haproxy reports server (api1, ...) in state.
func (h *HAProxy) WaitServer(t testing.TB, server, state string, within time.Duration) {
	t.Helper()
	var got map[string]string
	Eventually(t, within, func() bool {
		got, _ = h.ServerStates()
		return got[server] == state
	}, "haproxy reports %s %s (states: %v)", server, state, &got)
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
