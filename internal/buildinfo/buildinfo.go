// Package buildinfo says which binary is running: the module version, the
// VCS revision and time it was built from, and the Go version, for
// `billing version` and the billing_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by the linker when the build has no VCS information of its own (the
// Dockerfile builds without .git): -ldflags "-X
// github.com/stripe-billing/billing/internal/buildinfo.revision=<sha>
// -X github.com/stripe-billing/billing/internal/buildinfo.time=<RFC 3339>".
var (
	revision string
	time     string
)

// Info describes the running binary; unknown fields are "unknown".
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Time      string `json:"time"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// Read returns the binary's build information: Go's own (go build stamps
// the VCS revision, time and modified flag from the checkout), else the
// linker's values.
func Read() Info {
	info := Info{Version: "unknown", Revision: "unknown", Time: "unknown", GoVersion: runtime.Version()}
	if revision != "" {
		info.Revision = revision
	}
	if time != "" {
		info.Time = time
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch {
		case s.Value == "":
		case s.Key == "vcs.revision":
			info.Revision = s.Value
		case s.Key == "vcs.time":
			info.Time = s.Value
		case s.Key == "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}
