package models_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestStoreLogsNoValues makes GORM log a failed and a slow statement
// whose arguments are a customer's email and a hosted invoice URL: the
// log shows the statements with their placeholders, never the values.
func TestStoreLogsNoValues(t *testing.T) {
	t.Parallel()
	const (
		email = "alice.private@example.com"
		url   = "https://invoice.stripe.com/i/acct_1/secret_link_123"
	)
	logs := &testenv.SyncBuffer{}
	ctx := context.Background()
	store, err := models.Open(ctx, testenv.Database(t), models.PoolConfig{}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	// Failed: the second customer with one Stripe id breaks the unique key.
	for range 2 {
		err = store.DB().WithContext(ctx).Create(&models.Customer{StripeID: "cus_logged", Email: new(email)}).Error
	}
	if err == nil {
		t.Fatal("a second customer with one Stripe id was inserted")
	}
	// Slow: past the one-second threshold. Through Row, as the code reads
	// raw queries: gorm.DB.Scan logs through a recorder of its own that
	// ignores ParameterizedQueries, so the code never uses it.
	var slept int
	if err := store.DB().WithContext(ctx).Raw("SELECT SLEEP(1.05) + 0 * LENGTH(?)", url).Row().Scan(&slept); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, want := range []string{`"level":"ERROR","msg":"SQL executed"`, "INSERT INTO `customers`", `"level":"WARN","msg":"SQL executed"`, "SLEEP(1.05) + 0 * LENGTH(?)"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, leak := range []string{email, url, "secret_link"} {
		if strings.Contains(out, leak) {
			t.Errorf("log shows %q:\n%s", leak, out)
		}
	}
}
