package models

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLockTimeout is how long a second `billing migrate` waits for the first.
const migrateLockTimeout = 300

// Migrate applies the pending migrations and returns the names of those it
// applied (none when the schema is up to date). Concurrent runs against the
// same database take turns on a MySQL named lock.
func Migrate(ctx context.Context, db *sql.DB) ([]string, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("models: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectMySQL, db, fsys,
		goose.WithSessionLocker(migrateLocker{}),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, translate("migrate", err)
	}
	results, err := p.Up(ctx)
	var applied []string
	for _, r := range results {
		if r.Error == nil {
			applied = append(applied, filepath.Base(r.Source.Path))
		}
	}
	if err != nil {
		return applied, translate("migrate", err)
	}
	return applied, nil
}

// migrateLocker serialises goose runs on one database with GET_LOCK, which
// the server releases by itself if the session dies.
type migrateLocker struct{}

func (migrateLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var got sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+lockNameSQL+", ?)", "goose", migrateLockTimeout).Scan(&got)
	if err != nil {
		return translate("migrate lock", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return errors.New("models: migrate lock: another migration holds it")
	}
	return nil
}

func (migrateLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "DO RELEASE_LOCK("+lockNameSQL+")", "goose")
	return translate("migrate unlock", err)
}
