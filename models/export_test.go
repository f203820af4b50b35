package models

// Test-only access to internals.
var (
	IsUnavailable = isUnavailable
	OpenLazy      = open
	Migrations    = migrations // the embedded goose migrations, for tests that migrate to a given version
)
