package billing_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps holds the domain free of transport and of the database:
// billing marks failures through the leaf package failure, so neither the
// AMQP client nor stripe-go's API client may be among its dependencies,
// and it names no SQL itself: neither GORM nor database/sql is among its
// own imports (the row structs of models, which it folds, bring GORM's
// tags along, not a handle).
func TestDeps(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var deps []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		deps = append(deps, p.ImportPath)
	}
	if !slices.Contains(deps, "github.com/stripe-billing/billing/failure") {
		t.Fatalf("go list -deps listed %d packages without failure: the listing is not what this test thinks", len(deps))
	}
	forbidden := []string{
		"github.com/rabbitmq/amqp091-go",
		"github.com/stripe/stripe-go/v76/client",
		"github.com/stripe-billing/billing/retry",
		"github.com/stripe-billing/billing/broker",
	}
	for _, f := range forbidden {
		if slices.Contains(deps, f) {
			t.Errorf("billing depends on %s", f)
		}
	}
	own, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := strings.Fields(string(own))
	if !slices.Contains(imports, "github.com/stripe-billing/billing/failure") {
		t.Fatalf("billing's imports %v without failure: the listing is not what this test thinks", imports)
	}
	for _, imp := range imports {
		if imp == "database/sql" || strings.HasPrefix(imp, "gorm.io/") || strings.HasPrefix(imp, "github.com/go-sql-driver/") {
			t.Errorf("billing imports %s: the statements are the store's (models)", imp)
		}
	}
}
