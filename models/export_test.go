package models

// Test-only access to internals.
var (
	IsUnavailable = isUnavailable
	OpenLazy      = open
	Migrations    = migrations
)
