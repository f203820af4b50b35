package testenv

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/models"
)

// MySQLDSN is the server the tests use; its database name is ignored.
func MySQLDSN() string { return getenv("TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/?parseTime=true") }

// Database creates a fresh, migrated database for t, drops it when t ends
// and returns its DSN (parseTime=true, UTC).
func Database(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatalf("testenv: TEST_MYSQL_DSN: %v", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("testenv: open mysql: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := randomName("t")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("testenv: open %s: %v", name, err)
	}
	defer db.Close()
	if _, err := models.Migrate(ctx, db); err != nil {
		t.Fatalf("testenv: migrate %s: %v", name, err)
	}
	return dsn
}

// Store opens a Store on a fresh database (see Database), closed when t ends.
func Store(t testing.TB) *models.Store {
	t.Helper()
	dsn := Database(t)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := models.Open(context.Background(), dsn, models.PoolConfig{MaxOpenConns: 16, MaxIdleConns: 8, ConnMaxLifetime: time.Minute}, logger)
	if err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
