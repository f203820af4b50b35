package billing

import (
	"context"
	"slices"
	"sync"

	"gorm.io/gorm"
)

// Handler applies one event inside the transaction that records it.
type Handler interface {
	Handle(ctx context.Context, tx *gorm.DB, ev Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, tx *gorm.DB, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx *gorm.DB, ev Event) error { return f(ctx, tx, ev) }

// Mux routes events to handlers by exact event type.
type Mux struct {
	mu sync.RWMutex
	m  map[string]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{m: make(map[string]Handler)} }

// Handle registers h for eventType, replacing any earlier one.
func (m *Mux) Handle(eventType string, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[eventType] = h
}

// HandleFunc registers f for eventType.
func (m *Mux) HandleFunc(eventType string, f func(ctx context.Context, tx *gorm.DB, ev Event) error) {
	m.Handle(eventType, HandlerFunc(f))
}

// Handler returns the handler for eventType and whether there is one.
func (m *Mux) Handler(eventType string) (Handler, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	h, ok := m.m[eventType]
	return h, ok
}

// Types lists the registered event types, sorted.
func (m *Mux) Types() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	types := make([]string, 0, len(m.m))
	for t := range m.m {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}
