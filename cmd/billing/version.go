package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stripe-billing/billing/internal/buildinfo"
)

const versionUsage = `Which binary this is: the module version, the VCS revision and commit
time it was built from (with "modified" when the checkout had changes),
and the Go version. A build without .git (the Dockerfile's) gets the
revision and time from its VCS_REVISION and VCS_TIME build arguments.

  billing version [--json]`

func runVersion(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "version", versionUsage)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bi := buildinfo.Read()
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(bi)
	}
	modified := ""
	if bi.Modified {
		modified = ", modified"
	}
	fmt.Fprintf(e.stdout, "billing %s, revision %s (%s%s), %s\n", bi.Version, bi.Revision, bi.Time, modified, bi.GoVersion)
	return nil
}
