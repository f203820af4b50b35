package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := runCmd(t, func(string) string { return "" }, "version")
	if err != nil || !strings.HasPrefix(out, "billing ") || !strings.Contains(out, ", revision ") || !strings.HasSuffix(out, ", "+runtime.Version()+"\n") {
		t.Errorf("version = %q, %v", out, err)
	}
	out, err = runCmd(t, func(string) string { return "" }, "version", "--json")
	var bi buildinfo.Info
	if err != nil || json.Unmarshal([]byte(out), &bi) != nil || bi.GoVersion != runtime.Version() || bi.Revision == "" || bi.Version == "" {
		t.Errorf("version --json = %q, %v", out, err)
	}
}

// TestLogFormat: a command a person runs logs plain text, without a
// timestamp; with --json, JSON lines; MYSQL_DSN=garbage names the
// variable and says what the driver's parser found.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	ns, _, id := parkOne(t)
	getenv := dlqCmdEnv(ns, map[string]string{"LOG_LEVEL": "info"})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"dlq", "replay", "--event", id}, getenv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), `level=INFO msg="dlq message moved" event_id=`+id) || strings.Contains(stderr.String(), "time=") || strings.Contains(stderr.String(), "{") {
		t.Errorf("replay logs, want plain text without a time:\n%s", stderr.String())
	}

	// The development secret makes every command warn: a log line to read.
	withDevSecret := dlqCmdEnv(ns, map[string]string{"STRIPE_WEBHOOK_SECRET": api.DevWebhookSecret})
	for _, args := range [][]string{{"dlq", "list", "--json"}, {"dlq", "list"}} {
		stderr.Reset()
		if err := run(context.Background(), args, withDevSecret, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(stderr.String(), "\n")
		var entry struct{ Level, Msg string }
		isJSON := json.Unmarshal([]byte(line), &entry) == nil && entry.Level == "WARN"
		if wantJSON := len(args) == 3; isJSON != wantJSON || !strings.Contains(line, "development secret") {
			t.Errorf("billing %s logged %q; want JSON %v", strings.Join(args, " "), line, wantJSON)
		}
	}

	_, err := runCmd(t, dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": "garbage"}), "dlq", "list")
	if err == nil || !strings.Contains(err.Error(), "config: MYSQL_DSN: invalid DSN: missing the slash separating the database name") {
		t.Errorf("MYSQL_DSN=garbage: %v", err)
	}
}
