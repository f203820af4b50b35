package models

// Test-only access to internals.
var (
	IsUnavailable = isUnavailable
	OpenLazy      = open
)

// Migrations are the embedded goose migrations, for tests that migrate to
// a given version.
var Migrations = migrations
