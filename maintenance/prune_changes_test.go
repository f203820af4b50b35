package maintenance_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
)

func TestPruneChanges(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	// setup writes 25 changes published 8 days ago, 3 published an hour
	// ago and 2 written 8 days ago and never published.
	setup := func(t *testing.T) *models.Store {
		store := testenv.Store(t)
		old, recent := now.Add(-8*24*time.Hour), now.Add(-time.Hour)
		var rows []feed.Outbox
		add := func(n int, created time.Time, published *time.Time, name string) {
			for i := range n {
				id := fmt.Sprintf("%s_%d", name, i)
				rows = append(rows, feed.Outbox{ID: id, ObjectType: "customer", ObjectID: id, ObjectSeq: 1,
					RoutingKey: "customer.created", Body: "{}", CreatedAt: created, PublishedAt: published})
			}
		}
		add(25, old, &old, "old")
		add(3, recent, &recent, "recent")
		add(2, old, nil, "unpublished")
		if err := store.DB().Create(&rows).Error; err != nil {
			t.Fatal(err)
		}
		return store
	}
	left := func(t *testing.T, s *models.Store) []string {
		var ids []string
		if err := s.DB().Model(&feed.Outbox{}).Where("id NOT LIKE 'old%'").Order("id").Pluck("id", &ids).Error; err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.DB().Model(&feed.Outbox{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return append(ids, fmt.Sprint(n))
	}
	want := []string{"recent_0", "recent_1", "recent_2", "unpublished_0", "unpublished_1", "5"}

	t.Run("BoundedBatchesUntilNoneIsLeft", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		p, err := maintenance.NewPruneChanges(maintenance.PruneChangesConfig{
			Retention: 7 * 24 * time.Hour, Batch: 10, Limit: 20, Pause: time.Millisecond, Now: func() time.Time { return now },
		}, nil, s)
		if err != nil {
			t.Fatal(err)
		}
		var passes []int
		for range 3 {
			n, err := p.Pass(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			passes = append(passes, n)
		}
		if !slices.Equal(passes, []int{20, 5, 0}) {
			t.Errorf("pruned per pass %v, want [20 5 0]: at most the limit a pass", passes)
		}
		if got := left(t, s); !slices.Equal(got, want) {
			t.Errorf("left %v, want %v: the recent and the unpublished, and nothing else", got, want)
		}
	})

	t.Run("OffKeepsAll", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		p, err := maintenance.NewPruneChanges(maintenance.PruneChangesConfig{Now: func() time.Time { return now }}, nil, s)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := p.Pass(context.Background()); n != 0 || err != nil {
			t.Errorf("Pass with the retention off = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		_, err := maintenance.NewPruneChanges(maintenance.PruneChangesConfig{Retention: -time.Hour}, nil, (*models.Store)(nil))
		if err == nil || err.Error() != "maintenance: prune changes: retention -1h0m0s, batch 0, limit 0, pause 0s: want >= 0" {
			t.Errorf("a negative retention: %v", err)
		}
	})
}
