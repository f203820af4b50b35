package feed_test

import (
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models/feed"
)

// TestWrite: one statement inserts a set of changes; a change whose id
// the outbox holds (a rebuild makes it again) is left as it is, the
// others of its set inserted.
func TestWrite(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	row := func(id string, seq uint64, body string) feed.Outbox {
		return feed.Outbox{ID: id, ObjectType: "invoice", ObjectID: "in_1", ObjectSeq: seq, RoutingKey: "invoice.amount", Body: body, CreatedAt: now}
	}
	write := func(rows ...feed.Outbox) {
		t.Helper()
		if err := s.DB().Transaction(func(tx *gorm.DB) error { return feed.Write(tx, rows) }); err != nil {
			t.Fatal(err)
		}
	}
	write(row("evt_1/invoice/in_1/created", 1, `{"a":1}`), row("evt_2/invoice/in_1/amount", 2, `{"b":2}`))
	write(row("evt_2/invoice/in_1/amount", 2, `{"rebuilt":true}`), row("evt_3/invoice/in_1/amount", 3, `{"c":3}`))
	write()

	var got []feed.Outbox
	if err := s.DB().Order("seq").Find(&got).Error; err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range got {
		lines = append(lines, fmt.Sprintf("%s #%d %s", r.ID, r.ObjectSeq, r.Body))
	}
	want := []string{`evt_1/invoice/in_1/created #1 {"a":1}`, `evt_2/invoice/in_1/amount #2 {"b":2}`, `evt_3/invoice/in_1/amount #3 {"c":3}`}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("outbox %q; want %q", lines, want)
	}
	if !got[0].CreatedAt.Equal(now) || got[0].PublishedAt != nil || got[0].Seq >= got[2].Seq {
		t.Errorf("row %+v; want created_at %s, unpublished, seq in insertion order", got[0], now)
	}
}
