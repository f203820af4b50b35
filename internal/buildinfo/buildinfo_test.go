package buildinfo

import (
	"runtime"
	"testing"
)

// TestRead: a test binary carries no VCS stamp, so the linker's values
// (the Dockerfile's build arguments) show; the Go version is the
// runtime's.
func TestRead(t *testing.T) {
	if got := Read(); got.Revision != "unknown" || got.Time != "unknown" || got.GoVersion != runtime.Version() {
		t.Errorf("without linker values: %+v, want revision and time unknown, Go %s", got, runtime.Version())
	}
	revision, time = "0123abc", "2026-12-07T18:00:00Z"
	t.Cleanup(func() { revision, time = "", "" })
	if got := Read(); got.Revision != "0123abc" || got.Time != "2026-12-07T18:00:00Z" {
		t.Errorf("with linker values: %+v", got)
	}
}
