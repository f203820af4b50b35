package main

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/internal/testenv"
)

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	// A database that does not exist yet: migrate creates it.
	cfg, err := mysql.ParseDSN(testenv.EmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName += "_fresh"
	t.Cleanup(func() {
		admin := *cfg
		admin.DBName = ""
		db, err := sql.Open("mysql", admin.FormatDSN())
		if err == nil {
			_, _ = db.Exec("DROP DATABASE IF EXISTS `" + cfg.DBName + "`")
			db.Close()
		}
	})
	getenv := func(name string) string {
		if name == "MYSQL_DSN" {
			return cfg.FormatDSN()
		}
		return ""
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"first run applies", []string{"migrate"}, "applied 00001_init.sql\n"},
		{"second run applies nothing", []string{"migrate"}, "up to date\n"},
		{"help", []string{"migrate", "--help"}, "usage: billing migrate"},
	}
	for _, tt := range tests { // in order: each run sees the previous one's schema
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), tt.args, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("%s: run: %v (stderr %s)", tt.name, err, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), tt.want) {
			t.Errorf("%s: stdout = %q, want %q", tt.name, stdout.String(), tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"migrate", "extra"}, getenv, &stdout, &stderr)
	if exitCode(err) != 2 {
		t.Errorf("stray argument: err = %v, want a usage error", err)
	}
}
