package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/models"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "migrate", "Creates the database named in MYSQL_DSN if it is missing and applies the\npending schema migrations. Safe to run again and from several places at once.")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	if err := cfg.RequireMySQLDSN(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	dsn, err := mysql.ParseDSN(cfg.MySQLDSN)
	if err != nil {
		return fmt.Errorf("migrate: MYSQL_DSN: %w", err)
	}
	if dsn.DBName == "" {
		return fmt.Errorf("migrate: MYSQL_DSN: names no database")
	}
	if err := createDatabase(ctx, *dsn); err != nil {
		return err
	}
	db, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer db.Close()
	applied, err := models.Migrate(ctx, db)
	for _, name := range applied {
		fmt.Fprintf(e.stdout, "applied %s\n", name)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", explainDenied(err))
	}
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "up to date")
	}
	return nil
}

// createDatabase creates dsn's database when it does not exist yet, which
// spares a manual step on a fresh server (docker, first deploy).
func createDatabase(ctx context.Context, dsn mysql.Config) error {
	name := dsn.DBName
	dsn.DBName = ""
	db, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer db.Close()
	q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(name) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("migrate: create database %s: %w", name, explainDenied(err))
	}
	return nil
}

// MySQL's "access denied" to a database and to a table.
const (
	errDBAccessDenied    = 1044
	errTableAccessDenied = 1142
)

// explainDenied says what to do when MYSQL_DSN's user may not change the
// schema: it is the worker's (DML only), not the migrate user.
func explainDenied(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == errDBAccessDenied || me.Number == errTableAccessDenied) {
		return fmt.Errorf("%w (MYSQL_DSN's user may not change the schema: run migrate as the migrate user, see docs/operations.md#least-privilege)", err)
	}
	return err
}

func quoteIdent(s string) string {
	out := []byte{'`'}
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			out = append(out, '`')
		}
		out = append(out, s[i])
	}
	return string(append(out, '`'))
}
