package lookup_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

func TestReader(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	r := lookup.New(s)
	ctx := t.Context()
	str := func(v string) *string { return &v }
	at := func(d time.Duration) *time.Time {
		v := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(d)
		return &v
	}
	balance := int64(-250)
	rows := []any{
		&models.Customer{StripeID: "cus_look", Email: str("a@example.com"), Balance: &balance, StripeCreated: at(0)},
		&models.Invoice{StripeID: "in_old", CustomerID: str("cus_look"), Status: str("paid"), StripeCreated: at(time.Hour)},
		&models.Invoice{StripeID: "in_new", CustomerID: str("cus_look"), Status: str("open"), StripeCreated: at(2 * time.Hour)},
		&models.Invoice{StripeID: "in_other", CustomerID: str("cus_other"), Status: str("open"), StripeCreated: at(3 * time.Hour)},
	}
	for _, row := range rows {
		if err := s.DB().Create(row).Error; err != nil {
			t.Fatal(err)
		}
	}

	t.Run("FindObjectReadsPlainValues", func(t *testing.T) {
		row, err := r.FindObject(ctx, "cus_look")
		if err != nil {
			t.Fatal(err)
		}
		if row.Table != "customers" || row.Value("email") != "a@example.com" || row.Value("balance") != int64(-250) ||
			row.Value("name") != nil || row.Value("deleted") != false || row.Value("stripe_created") != *at(0) {
			t.Errorf("FindObject(cus_look) = %+v", row)
		}
	})
	t.Run("FindObjectUnknownIsNotFound", func(t *testing.T) {
		if _, err := r.FindObject(ctx, "cus_nobody"); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("FindObject(cus_nobody) err = %v, want ErrNotFound", err)
		}
		if _, err := r.Event(ctx, "evt_nobody"); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("Event(evt_nobody) err = %v, want ErrNotFound", err)
		}
	})
	t.Run("CustomerObjectsNewestFirst", func(t *testing.T) {
		objs, err := r.CustomerObjects(ctx, "cus_look")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.ObjectType+" "+o.StripeID+" "+*o.Status)
		}
		if want := []string{"invoice in_new open", "invoice in_old paid"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("CustomerObjects(cus_look) = %q, want %q", got, want)
		}
	})
}
