package models_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

func ledgerRow(t *testing.T, s *models.Store, id string) models.StripeEvent {
	t.Helper()
	var ev models.StripeEvent
	if err := s.DB().Where("id = ?", id).Take(&ev).Error; err != nil {
		t.Fatalf("ledger row %s: %v", id, err)
	}
	return ev
}

func insertEvent(t *testing.T, s *models.Store, id, status string) {
	t.Helper()
	err := s.InTx(context.Background(), func(tx *gorm.DB) error {
		now := time.Now()
		_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: id, Type: "invoice.paid", Status: status, ReceivedAt: now, ProcessedAt: &now})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sig stands for a Stripe-Signature the caller of MarkDead checked: the
// store keeps it, it does not check it.
const sig = "t=1,v1=checked"

func TestMarkDead(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	tests := []struct {
		name         string
		existing     string // ledger status before MarkDead; "" for none
		wantStatus   string
		wantAttempts int
	}{
		{"new event", "", models.EventDead, 8},
		{"dead again", models.EventDead, models.EventDead, 8},
		{"processed stays processed", models.EventProcessed, models.EventProcessed, 1},
		{"ignored stays ignored", models.EventIgnored, models.EventIgnored, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := "evt_dead_" + tt.name
			switch tt.existing {
			case "":
			case models.EventDead:
				if err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Payload: []byte(`{"id":"` + id + `","first":1}`), Signature: sig, Attempts: 3, LastError: "first"}); err != nil {
					t.Fatal(err)
				}
			default:
				insertEvent(t, s, id, tt.existing)
			}
			err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Payload: []byte(`{"id":"` + id + `"}`), Signature: sig, Attempts: 8, LastError: "boom"})
			if err != nil {
				t.Fatal(err)
			}
			got := ledgerRow(t, s, id)
			if got.Status != tt.wantStatus || got.Attempts != tt.wantAttempts {
				t.Errorf("status %q attempts %d, want %q %d", got.Status, got.Attempts, tt.wantStatus, tt.wantAttempts)
			}
			if tt.wantStatus == models.EventDead && (got.LastError == nil || *got.LastError != "boom" || len(got.Payload) == 0) {
				t.Errorf("dead row lacks last error or payload: %+v", got)
			}
		})
	}
	if err := s.MarkDead(ctx, models.DeadEvent{}); err == nil {
		t.Error("MarkDead without id: no error")
	}
}

// TestMarkDeadKeepsOnlySignedPayloads: a payload without a signature,
// or signed for another event id, is not kept: the row names the event as
// claimed and holds nothing else (unverified). A signed parking of the
// same id later replaces what the unverified one claimed; an unverified
// parking after a signed one changes none of it.
func TestMarkDeadKeepsOnlySignedPayloads(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	id := "evt_MarkDeadSigned"
	forged := []byte(`{"id":"` + id + `","type":"invoice.paid","created":4102444800,"account":"acct_stranger","livemode":true,"data":{"object":{"object":"invoice","id":"in_x"}}}`)
	genuine := []byte(`{"id":"` + id + `","type":"invoice.voided","created":1700000000,"api_version":"2023-10-16","data":{"object":{"object":"invoice","id":"in_y"}}}`)
	unverified := func(name string, ev models.DeadEvent) {
		t.Helper()
		if err := s.MarkDead(ctx, ev); err != nil {
			t.Fatal(err)
		}
		got := ledgerRow(t, s, id)
		if got.Status != models.EventDead || got.Payload != nil || got.Signature != nil || got.Created != nil || got.ObjectID != nil ||
			got.Type != "invoice.paid" {
			t.Errorf("%s: row %+v; want dead, type as claimed, no payload, signature, created or object", name, got)
		}
	}
	unverified("unsigned", models.DeadEvent{ID: id, Type: "invoice.paid", Payload: forged, Attempts: 3, LastError: "stripe 500"})
	unverified("signed for another id", models.DeadEvent{ID: id, Type: "invoice.paid", Payload: []byte(`{"id":"evt_other"}`), Signature: sig, Attempts: 3, LastError: "x"})

	signed := func() {
		t.Helper()
		got := ledgerRow(t, s, id)
		if got.Type != "invoice.voided" || string(got.Payload) != string(genuine) || string(got.Signature) != sig || got.Created == nil ||
			got.Created.Unix() != 1700000000 || got.ObjectID == nil || *got.ObjectID != "in_y" {
			t.Errorf("row %+v; want the signed payload's type, created and object", got)
		}
	}
	if err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Payload: genuine, Signature: sig, Attempts: 4, LastError: "db down"}); err != nil {
		t.Fatal(err)
	}
	signed()
	if err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Payload: forged, Attempts: 5, LastError: "again"}); err != nil {
		t.Fatal(err)
	}
	signed()
	if got := ledgerRow(t, s, id); got.Attempts != 5 || got.LastError == nil || *got.LastError != "again" {
		t.Errorf("attempts %d last_error %v; want the latest parking's", got.Attempts, got.LastError)
	}
}

func TestKnownEventIDsAndRedrives(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	insertEvent(t, s, "evt_A", models.EventProcessed)
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_B", Type: "x", Payload: []byte(`{"id":"evt_B"}`), Signature: sig}); err != nil {
		t.Fatal(err)
	}
	// Parked unverified: the row proves nothing, reconciliation may enqueue
	// Stripe's copy.
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_D", Type: "x", Payload: []byte(`{"id":"evt_D"}`)}); err != nil {
		t.Fatal(err)
	}
	known, err := s.KnownEventIDs(ctx, []string{"evt_A", "evt_a", "evt_B", "evt_C", "evt_D"})
	if err != nil {
		t.Fatal(err)
	}
	if len(known) != 2 || !known["evt_A"] || !known["evt_B"] {
		t.Errorf("KnownEventIDs = %v, want evt_A and evt_B only (ids are case-sensitive; evt_D is dead unverified)", known)
	}
	for want := 1; want <= 2; want++ {
		n, err := s.IncrementRedrives(ctx, "evt_B")
		if err != nil || n != want {
			t.Fatalf("IncrementRedrives = %d, %v; want %d", n, err, want)
		}
	}
	if _, err := s.IncrementRedrives(ctx, "evt_missing"); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("IncrementRedrives(missing) err = %v, want ErrNotFound", err)
	}
}

func TestCheckpoint(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	if v, err := s.Checkpoint(ctx, "sweep"); err != nil || v != "" {
		t.Fatalf("unset checkpoint = %q, %v", v, err)
	}
	for _, want := range []string{"evt_1", "evt_2"} {
		if err := s.SetCheckpoint(ctx, "sweep", want); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Checkpoint(ctx, "sweep"); err != nil || v != want {
			t.Fatalf("checkpoint = %q, %v; want %q", v, err, want)
		}
	}
}

func TestWithLock(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	held := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		acquired, err := s.WithLock(ctx, "sweep", 0, func(context.Context) error {
			close(held)
			<-release
			return nil
		})
		if err == nil && !acquired {
			err = errors.New("first caller did not acquire")
		}
		firstDone <- err
	}()
	<-held
	ran := false
	acquired, err := s.WithLock(ctx, "sweep", time.Second, func(context.Context) error { ran = true; return nil })
	if err != nil || acquired || ran {
		t.Fatalf("second caller: acquired %v, ran %v, err %v; want neither", acquired, ran, err)
	}
	// Another name is independent.
	if acquired, err := s.WithLock(ctx, "other", 0, func(context.Context) error { return nil }); err != nil || !acquired {
		t.Fatalf("other lock: acquired %v, err %v", acquired, err)
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	// Released: the next caller gets it, and fn's error comes back.
	boom := errors.New("boom")
	acquired, err = s.WithLock(ctx, "sweep", 0, func(context.Context) error { return boom })
	if !acquired || !errors.Is(err, boom) {
		t.Fatalf("after release: acquired %v, err %v", acquired, err)
	}
}

// A dead event processed at last (a replay) is taken over: processed,
// its parking's error cleared, and the genuine event's type, created, API
// version, livemode, account, object, payload and signature in place of
// whatever the parking recorded (here a verified row under a claimed
// type, and a legacy row holding a forged payload dated 2100).
func TestClaimEventTakesOverADeadRow(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	for _, parked := range []string{"unverified", "legacy"} {
		t.Run(parked, func(t *testing.T) {
			id := "evt_back_" + parked
			if parked == "unverified" {
				if err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Attempts: 3, LastError: "boom"}); err != nil {
					t.Fatal(err)
				}
			} else {
				y2100, obj := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), "in_forged"
				err := s.InTx(ctx, func(tx *gorm.DB) error {
					_, err := models.InsertEvents(tx, []models.StripeEvent{{ID: id, Type: "invoice.paid", APIVersion: "2099-01-01", Livemode: true,
						Account: "acct_stranger", Created: &y2100, ObjectType: &obj, ObjectID: &obj, Status: models.EventDead,
						Payload: []byte(`{"forged":true}`), ReceivedAt: time.Now()}})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			invoice, object := "invoice", "in_genuine"
			genuine := models.StripeEvent{ID: id, Type: "invoice.voided", APIVersion: "2023-10-16", Account: "acct_1Ours", Created: &created,
				ObjectType: &invoice, ObjectID: &object, Payload: []byte(`{"genuine":true}`), Signature: []byte(sig)}
			var claim models.Claim
			err := s.InTx(ctx, func(tx *gorm.DB) error {
				now := time.Now()
				ev := genuine
				ev.ReceivedAt, ev.ProcessedAt = now, &now
				var err error
				claim, err = models.ClaimEvent(tx, &ev)
				return err
			})
			if err != nil || claim != models.ClaimTakeover {
				t.Fatalf("ClaimEvent = %v, %v; want a takeover", claim, err)
			}
			got := ledgerRow(t, s, id)
			if got.Status != models.EventProcessed || got.Attempts < 2 || got.LastError != nil || got.ProcessedAt == nil {
				t.Errorf("row %s attempts %d last_error %v processed_at %v; want processed, attempts counted, no last_error", got.Status, got.Attempts, got.LastError, got.ProcessedAt)
			}
			if got.Type != genuine.Type || got.APIVersion != genuine.APIVersion || got.Livemode || got.Account != genuine.Account ||
				got.Created == nil || !got.Created.Equal(created) || got.ObjectID == nil || *got.ObjectID != object ||
				string(got.Payload) != string(genuine.Payload) || string(got.Signature) != sig {
				t.Errorf("row after takeover %+v; want the genuine event's fields", got)
			}
		})
	}
}

func TestDead(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	if got, err := s.Dead(ctx); err != nil || got != (models.DeadSummary{}) {
		t.Fatalf("Dead with none dead = %+v, %v; want the zero summary", got, err)
	}
	insertEvent(t, s, "evt_done", models.EventProcessed)
	for _, id := range []string{"evt_dead_1", "evt_dead_2"} {
		if err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
			t.Fatal(err)
		}
	}
	first := ledgerRow(t, s, "evt_dead_1").ReceivedAt
	got, err := s.Dead(ctx)
	want := models.DeadSummary{Count: 2, OldestID: "evt_dead_1", OldestReceivedAt: first}
	if err != nil || got.Count != want.Count || got.OldestID != want.OldestID || !got.OldestReceivedAt.Equal(first) {
		t.Errorf("Dead = %+v, %v; want %+v", got, err, want)
	}
	ids, err := s.DeadIDs(ctx, 10)
	if err != nil || len(ids) != 2 || ids[0] != "evt_dead_1" || ids[1] != "evt_dead_2" {
		t.Errorf("DeadIDs = %v, %v; want [evt_dead_1 evt_dead_2]", ids, err)
	}
	if ids, err := s.DeadIDs(ctx, 1); err != nil || len(ids) != 1 {
		t.Errorf("DeadIDs(limit 1) = %v, %v; want one id", ids, err)
	}
}

func TestActivity(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	since := time.Now().Add(-time.Minute)
	// Received and processed two days ago: outside every count.
	old := time.Now().Add(-48 * time.Hour)
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: "evt_old", Type: "invoice.paid", ReceivedAt: old, ProcessedAt: &old})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	insertEvent(t, s, "evt_done_1", models.EventProcessed)
	insertEvent(t, s, "evt_done_2", models.EventIgnored)
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_dead", Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Activity(ctx, since)
	want := models.Activity{Received: 3, Processed: 2, Parked: 1}
	if err != nil || got != want {
		t.Errorf("Activity = %+v, %v; want %+v", got, err, want)
	}
}

// TestTimeRanges checks that a statement bounding received_at by a time
// reads that range of the (status, received_at) index, not every event
// of the status: a time in nanoseconds, as time.Now() gives, reaches
// MariaDB in microseconds, which it converts to received_at for a range.
func TestTimeRanges(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	rows := make([]models.StripeEvent, 200)
	for i := range rows {
		rows[i] = models.StripeEvent{ID: fmt.Sprintf("evt_old_%03d", i), Type: "invoice.paid", ReceivedAt: old, ProcessedAt: &old}
	}
	if err := s.InTx(ctx, func(tx *gorm.DB) error { _, err := models.InsertEvents(tx, rows); return err }); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute)
	if at.Nanosecond()%1000 == 0 {
		at = at.Add(time.Nanosecond)
	}
	tests := []struct {
		name, query string
		args        []any
	}{
		// Activity, for the status report: the events of its window.
		{"StatusWindow", "SELECT status, COUNT(*) FROM stripe_events WHERE status IN ? AND received_at >= ? GROUP BY status",
			[]any{[]string{models.EventProcessed, models.EventIgnored, models.EventDead}, at}},
		// PrunePayloads: the events received before the cutoff, which
		// the last batch of a pass reaches.
		{"RetentionWalk", "SELECT seq, received_at FROM stripe_events WHERE status = ? AND received_at < ? ORDER BY received_at, seq LIMIT 1000",
			[]any{models.EventProcessed, at.Add(-72 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plan string
			if err := s.DB().Raw("EXPLAIN FORMAT=JSON "+tt.query, tt.args...).Row().Scan(&plan); err != nil {
				t.Fatal(err)
			}
			key, parts := planKey(t, plan)
			if key != "idx_stripe_events_status_received" || !slices.Contains(parts, "received_at") {
				t.Errorf("reads index %q by %v, want idx_stripe_events_status_received by status and received_at\n%s", key, parts, plan)
			}
		})
	}
	got, err := s.Activity(ctx, at)
	if err != nil || got != (models.Activity{}) {
		t.Errorf("Activity = %+v, %v; want none of the 200 events received two days ago", got, err)
	}
}

// planKey returns the index, and the parts of it, that the JSON plan of a
// one-table statement reads (MariaDB nests the table in nested_loop,
// MySQL 8 in grouping_operation or query_block).
func planKey(t *testing.T, plan string) (string, []string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(plan), &doc); err != nil {
		t.Fatal(err)
	}
	var find func(v any) map[string]any
	find = func(v any) map[string]any {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["used_key_parts"]; ok {
				return v
			}
			for _, c := range v {
				if m := find(c); m != nil {
					return m
				}
			}
		case []any:
			for _, c := range v {
				if m := find(c); m != nil {
					return m
				}
			}
		}
		return nil
	}
	table := find(doc)
	if table == nil {
		return "", nil
	}
	key, _ := table["key"].(string)
	var parts []string
	for _, p := range table["used_key_parts"].([]any) {
		parts = append(parts, fmt.Sprint(p))
	}
	return key, parts
}
