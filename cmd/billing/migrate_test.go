package main

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
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

// Least privilege: the migrate user's grants are enough to migrate a new
// database; the worker's (DML only) are refused with a message naming the
// fix.
func TestMigrateCommandPrivileges(t *testing.T) {
	t.Parallel()
	migrate := func(dsn string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"migrate"}, func(name string) string {
			return map[string]string{"MYSQL_DSN": dsn}[name]
		}, &stdout, &stderr)
		return stdout.String(), err
	}
	t.Run("MigrateUser", func(t *testing.T) {
		t.Parallel()
		out, err := migrate(testenv.MySQLUser(t, testenv.EmptyDatabase(t), models.MigratePrivileges))
		if err != nil || !strings.HasPrefix(out, "applied 00001_init.sql\n") {
			t.Fatalf("migrate as the migrate user = %v, stdout %q, want the migrations applied", err, out)
		}
	})
	t.Run("WorkerUserRefused", func(t *testing.T) {
		t.Parallel()
		_, err := migrate(testenv.MySQLUser(t, testenv.Database(t), models.Grants()["worker"][0].Privileges))
		if err == nil || !strings.Contains(err.Error(), "run migrate as the migrate user") {
			t.Fatalf("migrate as the worker's user = %v, want a refusal naming the migrate user", err)
		}
		t.Logf("refused: %v", err)
	})
}
