package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stripe-billing/billing/internal/testenv"
)

// TestNotifyCommand: what billing notify and billing changes refuse at
// start, before any email or subscription.
func TestNotifyCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dispute_opened.tmpl"), []byte("{{define \"subject\"}}Dispute{{end}}\n{{.Amount | nosuch}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := testenv.Database(t)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		err  string
		code int
	}{
		{name: "MalformedTemplate", args: []string{"notify"}, env: map[string]string{"MYSQL_DSN": dsn, "NOTIFY_TEMPLATES": dir},
			err: "notify: template " + dir + "/dispute_opened.tmpl: template: dispute_opened.tmpl:2: function \"nosuch\" not defined", code: 1},
		{name: "SupportNotAnAddress", args: []string{"notify"}, env: map[string]string{"MYSQL_DSN": dsn, "NOTIFY_SUPPORT_EMAIL": "Support <support@example.com>"},
			err: "config: NOTIFY_SUPPORT_EMAIL: must be one bare email address, such as billing@example.com", code: 1},
		{name: "SMTPAddrNoPort", args: []string{"notify"}, env: map[string]string{"MYSQL_DSN": dsn, "SMTP_ADDR": "mailpit"},
			err: "config: SMTP_ADDR: \"mailpit\" is not host:port", code: 1},
		{name: "ChangesWithoutTail", args: []string{"changes"}, err: "usage: changes needs tail", code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &stdout, &stderr)
			if err == nil || err.Error() != tc.err || exitCode(err) != tc.code {
				t.Fatalf("billing %v = %v (exit %d), want %s (exit %d)", tc.args, err, exitCode(err), tc.err, tc.code)
			}
		})
	}
}
