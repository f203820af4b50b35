package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/models"
)

// MySQLDSN is the server the tests use; its database name is ignored.
func MySQLDSN() string { return getenv("TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/?parseTime=true") }

// cloneConns is how many tables a clone creates at once: InnoDB syncs each
// CREATE TABLE to disk, and concurrent ones share the waits.
const cloneConns = 4

// Database creates a fresh, migrated database for t, drops it when t ends
// and returns its DSN (parseTime=true, UTC). The schema is a copy of one
// database that goose migrated once per test process (see migratedSchema),
// so `billing migrate` finds it up to date; a test of the migrations
// themselves starts from EmptyDatabase instead.
func Database(t testing.TB) string {
	t.Helper()
	schema, err := migratedSchema()
	if err != nil {
		t.Fatal(err)
	}
	cfg := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := schema.copyTo(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.FormatDSN()
}

// EmptyDatabase creates a fresh database with no tables for t, dropped when
// t ends, and returns its DSN (parseTime=true, UTC): for tests that run the
// migrations from scratch.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t).FormatDSN()
}

// Store opens a Store on a fresh database (see Database), closed when t ends.
func Store(t testing.TB) *models.Store {
	t.Helper()
	return StoreAt(t, Database(t))
}

// StoreAt opens a Store on the database dsn, closed when t ends: for a
// test that also hands dsn to a command it runs.
func StoreAt(t testing.TB, dsn string) *models.Store {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := models.Open(context.Background(), dsn, models.PoolConfig{MaxOpenConns: 16, MaxIdleConns: 8, ConnMaxLifetime: time.Minute}, logger)
	if err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// serverConfig is TEST_MYSQL_DSN with no database selected, parseTime=true, UTC.
func serverConfig() (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		return nil, fmt.Errorf("testenv: TEST_MYSQL_DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.DBName = ""
	return cfg, nil
}

// admin is the process's one connection pool without a database, for
// creating and dropping databases.
var admin = sync.OnceValues(func() (*sql.DB, error) {
	cfg, err := serverConfig()
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("testenv: open mysql: %w", err)
	}
	return db, nil
})

// newDatabase creates an empty database for t, dropped when t ends, and
// returns its config.
func newDatabase(t testing.TB) *mysql.Config {
	t.Helper()
	cfg, err := serverConfig()
	if err != nil {
		t.Fatal(err)
	}
	db, err := admin()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = randomName("t")
	if err := createDatabase(context.Background(), db, cfg.DBName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(context.Background(), db, cfg.DBName); err != nil {
			t.Log(err)
		}
	})
	return cfg
}

func createDatabase(ctx context.Context, admin *sql.DB, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("testenv: create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, admin *sql.DB, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		return fmt.Errorf("testenv: drop database %s: %w", name, err)
	}
	return nil
}

// schema is what the migrations leave in a database: each table's CREATE
// TABLE statement, each view's CREATE VIEW, and the rows they wrote
// (goose's version table above all).
type schema struct {
	tables []string
	views  []string
	rows   []tableRows
}

type tableRows struct {
	insert string // INSERT INTO `t` (columns) VALUES (?, ...)
	values [][]any
}

// migratedSchema migrates a template database once per test process, reads
// its schema and rows and drops it at once, so no template outlives the
// process and concurrent test processes (each with its own random template
// name) never share one.
var migratedSchema = sync.OnceValues(func() (*schema, error) {
	db, err := admin()
	if err != nil {
		return nil, err
	}
	cfg, err := serverConfig()
	if err != nil {
		return nil, err
	}
	cfg.DBName = randomName("template")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := createDatabase(ctx, db, cfg.DBName); err != nil {
		return nil, err
	}
	defer func() { _ = dropDatabase(context.Background(), db, cfg.DBName) }()
	template, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("testenv: open %s: %w", cfg.DBName, err)
	}
	defer template.Close()
	if _, err := models.Migrate(ctx, template); err != nil {
		return nil, fmt.Errorf("testenv: migrate template %s: %w", cfg.DBName, err)
	}
	s, err := readSchema(ctx, template)
	if err != nil {
		return nil, fmt.Errorf("testenv: read template %s: %w", cfg.DBName, err)
	}
	return s, nil
})

func readSchema(ctx context.Context, db *sql.DB) (*schema, error) {
	names, err := tableNames(ctx, db, "BASE TABLE")
	if err != nil {
		return nil, err
	}
	views, err := tableNames(ctx, db, "VIEW")
	if err != nil {
		return nil, err
	}
	s := &schema{}
	for _, name := range views {
		var view, create, charset, collation string
		if err := db.QueryRowContext(ctx, "SHOW CREATE VIEW `"+name+"`").Scan(&view, &create, &charset, &collation); err != nil {
			return nil, err
		}
		// The definer is the template's creator; the copy's is whoever
		// creates it.
		s.views = append(s.views, definerClause.ReplaceAllString(create, ""))
	}
	for _, name := range names {
		var table, create string
		if err := db.QueryRowContext(ctx, "SHOW CREATE TABLE `"+name+"`").Scan(&table, &create); err != nil {
			return nil, err
		}
		s.tables = append(s.tables, create)
		r, err := readRows(ctx, db, name)
		if err != nil {
			return nil, err
		}
		if len(r.values) > 0 {
			s.rows = append(s.rows, r)
		}
	}
	return s, nil
}

// definerClause is the DEFINER of a SHOW CREATE VIEW statement.
var definerClause = regexp.MustCompile("DEFINER=`[^`]*`@`[^`]*` ")

// tableNames lists the current database's tables of type typ (BASE TABLE,
// VIEW) by name.
func tableNames(ctx context.Context, db *sql.DB, typ string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = ? ORDER BY table_name", typ)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, rows.Err()
}

func readRows(ctx context.Context, db *sql.DB, table string) (tableRows, error) {
	rows, err := db.QueryContext(ctx, "SELECT * FROM `"+table+"`")
	if err != nil {
		return tableRows{}, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return tableRows{}, err
	}
	r := tableRows{insert: "INSERT INTO `" + table + "` (`" + strings.Join(cols, "`, `") + "`) VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"}
	for rows.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return tableRows{}, err
		}
		r.values = append(r.values, values)
	}
	return r, rows.Err()
}

// copyTo creates the schema's tables in the empty database cfg names and
// writes its rows there.
func (s *schema) copyTo(ctx context.Context, cfg *mysql.Config) error {
	target := cfg.Clone()
	// Tables are created in any order, so a foreign key may name one not
	// created yet.
	target.Params = map[string]string{"foreign_key_checks": "0"}
	db, err := sql.Open("mysql", target.FormatDSN())
	if err != nil {
		return fmt.Errorf("testenv: open %s: %w", cfg.DBName, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(cloneConns)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cloneConns)
	for _, create := range s.tables {
		g.Go(func() error {
			_, err := db.ExecContext(gctx, create)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("testenv: create tables in %s: %w", cfg.DBName, err)
	}
	for _, create := range s.views { // after the tables they select from
		if _, err := db.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("testenv: create views in %s: %w", cfg.DBName, err)
		}
	}
	for _, r := range s.rows {
		for _, v := range r.values {
			if _, err := db.ExecContext(ctx, r.insert, v...); err != nil {
				return fmt.Errorf("testenv: copy rows into %s: %w", cfg.DBName, err)
			}
		}
	}
	return nil
}

// Schema describes the tables of db's current database, one sorted line per
// table, column and index column ("invoices.status varchar(32) ..."), for
// tests that compare two schemas.
func Schema(t testing.TB, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`
		SELECT CONCAT_WS(' ', CONCAT(table_name, '.', column_name), column_type, is_nullable,
			IFNULL(column_default, 'no-default'), IFNULL(collation_name, '-'), extra)
		FROM information_schema.columns WHERE table_schema = DATABASE()
		UNION ALL
		SELECT CONCAT_WS(' ', table_name, 'index', index_name, non_unique, seq_in_index, column_name)
		FROM information_schema.statistics WHERE table_schema = DATABASE()
		UNION ALL
		SELECT CONCAT_WS(' ', table_name, 'table', engine, table_collation)
		FROM information_schema.tables WHERE table_schema = DATABASE()
		ORDER BY 1`)
	if err != nil {
		t.Fatalf("testenv: read schema: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatalf("testenv: read schema: %v", err)
		}
		out = append(out, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testenv: read schema: %v", err)
	}
	return out
}

// MySQLUser creates a user with privileges (models.MigratePrivileges, ...) on
// dsn's database only, dropped when t ends, and returns dsn as that user.
func MySQLUser(t testing.TB, dsn, privileges string) string {
	t.Helper()
	cfg, db := userAdmin(t, dsn)
	user, password := randomName("u"), randomName("pw")
	dropUserAtCleanup(t, db, user)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'",
		"GRANT " + privileges + " ON `" + cfg.DBName + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("testenv: mysql user: %v", err)
		}
	}
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN()
}

// userAdmin parses dsn and opens the server as its administrator, to
// create users for dsn's database.
func userAdmin(t testing.TB, dsn string) (*mysql.Config, *sql.DB) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := admin()
	if err != nil {
		t.Fatal(err)
	}
	return cfg, db
}

// dropUserAtCleanup drops user (server-wide) when t ends.
func dropUserAtCleanup(t testing.TB, db *sql.DB, user string) {
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP USER IF EXISTS '"+user+"'@'%'"); err != nil {
			t.Logf("testenv: drop mysql user %s: %v", user, err)
		}
	})
}

// scriptUser reads a CREATE USER statement of deploy/mysql's scripts.
var scriptUser = regexp.MustCompile(`^CREATE USER 'billing_([a-z]+)'@'%' IDENTIFIED BY '([^']*)'$`)

// MySQLUsersFromScripts runs deploy/mysql's SQL files (paths relative to
// the calling test's package), as docker-compose runs them, for dsn's
// database: each user billing_<role> becomes a user of this test's own
// (users are server-wide), dropped when t ends. It returns each role's DSN.
func MySQLUsersFromScripts(t testing.TB, dsn string, paths ...string) map[string]string {
	t.Helper()
	cfg, db := userAdmin(t, dsn)
	prefix := randomName("u")
	out := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var sql strings.Builder
		for line := range strings.Lines(string(b)) {
			if !strings.HasPrefix(strings.TrimSpace(line), "--") {
				sql.WriteString(line)
			}
		}
		for stmt := range strings.SplitSeq(sql.String(), ";") {
			if stmt = strings.TrimSpace(stmt); stmt == "" {
				continue
			}
			if m := scriptUser.FindStringSubmatch(stmt); m != nil {
				user := prefix + "_" + m[1]
				dropUserAtCleanup(t, db, user)
				c := *cfg
				c.User, c.Passwd = user, m[2]
				out[m[1]] = c.FormatDSN()
			}
			stmt = strings.ReplaceAll(stmt, "'billing_", "'"+prefix+"_")
			stmt = strings.ReplaceAll(stmt, "`billing`.", "`"+cfg.DBName+"`.")
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("testenv: %s: %v", p, err)
			}
		}
	}
	return out
}
