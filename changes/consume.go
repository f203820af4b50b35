package changes

import (
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// ErrVersion is the error of Decode for a message of a schema version
// this package does not read: a consumer parks the message and is
// upgraded, it does not guess.
var ErrVersion = errors.New("changes: unknown schema version")

// Decode reads one message's body. It refuses what is not one JSON
// object, a version other than Version (ErrVersion), and a message
// without the fields a consumer keys on (id, key, object_type,
// object_id, a sequence from 1). Fields it does not know are ignored:
// adding one does not raise the version.
func Decode(body []byte) (Change, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Change{}, fmt.Errorf("changes: decode: not a JSON object: %w", err)
	}
	if probe.Version == nil {
		return Change{}, fmt.Errorf("%w: no \"version\"", ErrVersion)
	}
	if *probe.Version != Version {
		return Change{}, fmt.Errorf("%w %d (this package reads %d)", ErrVersion, *probe.Version, Version)
	}
	var c Change
	if err := json.Unmarshal(body, &c); err != nil {
		return Change{}, fmt.Errorf("changes: decode: %w", err)
	}
	switch {
	case c.ID == "":
		return Change{}, errors.New("changes: decode: no \"id\"")
	case c.Key == "":
		return Change{}, fmt.Errorf("changes: decode %s: no \"key\"", c.ID)
	case c.ObjectType == "" || c.ObjectID == "":
		return Change{}, fmt.Errorf("changes: decode %s: no \"object_type\" or \"object_id\"", c.ID)
	case c.Sequence == 0:
		return Change{}, fmt.Errorf("changes: decode %s: \"sequence\" must be 1 or more", c.ID)
	}
	return c, nil
}

// Verdict is what a Tracker tells of one change.
type Verdict struct {
	// Duplicate: the change's id was seen within the window; drop it.
	Duplicate bool
	// Missing counts the object's changes that never came between the
	// last one seen and this one (a gap: a change lost, or not yet
	// delivered). Zero when the object is new to the tracker.
	Missing uint64
	// Late: the object's newer change was seen before this one (it is
	// older than what the consumer already acted on). A consumer that
	// keeps the latest state ignores it.
	Late bool
}

// DefaultWindow is the window of NewTracker(0).
const DefaultWindow = 100_000

// Tracker drops duplicates and tells gaps and late changes. Its memory is
// bounded: it remembers the last window ids and the latest sequence of
// the last window objects it saw, each forgetting the least recently
// seen first. A duplicate delivered after window other changes passes
// as new, so a consumer whose effect must happen once (an email) keeps
// its own record of ids too (notify keeps it in MySQL); a gap is told
// only for an object still remembered. Safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	ids     lru[struct{}]
	objects lru[uint64]
}

// NewTracker returns a tracker of window ids and objects (DefaultWindow
// when window <= 0). Each remembered id or object costs about 100 bytes
// beyond its text.
func NewTracker(window int) *Tracker {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Tracker{ids: newLRU[struct{}](window), objects: newLRU[uint64](window)}
}

// Track records c and says whether it is a duplicate, follows a gap or
// comes late. A duplicate changes nothing; a late change does not move
// its object's latest sequence back.
func (t *Tracker) Track(c Change) Verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ids.get(c.ID); ok {
		return Verdict{Duplicate: true}
	}
	t.ids.put(c.ID, struct{}{})
	obj := c.ObjectType + "/" + c.ObjectID
	last, known := t.objects.get(obj)
	switch {
	case !known:
		t.objects.put(obj, c.Sequence)
		return Verdict{}
	case c.Sequence <= last:
		return Verdict{Late: true}
	default:
		t.objects.put(obj, c.Sequence)
		return Verdict{Missing: c.Sequence - last - 1}
	}
}

// lru is a map of at most max keys that forgets the least recently used.
type lru[V any] struct {
	max   int
	order *list.List // of *entry[V], the most recent first
	items map[string]*list.Element
}

type entry[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) lru[V] {
	return lru[V]{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

func (l *lru[V]) get(key string) (V, bool) {
	if e, ok := l.items[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*entry[V]).val, true
	}
	var zero V
	return zero, false
}

func (l *lru[V]) put(key string, val V) {
	if e, ok := l.items[key]; ok {
		e.Value.(*entry[V]).val = val
		l.order.MoveToFront(e)
		return
	}
	l.items[key] = l.order.PushFront(&entry[V]{key: key, val: val})
	if l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*entry[V]).key)
	}
}
