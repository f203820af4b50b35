package billing

// WithoutHandlers drops the handlers of types: a worker of an older
// release, for tests of what a newer one makes of its events.
func WithoutHandlers(types ...string) Option {
	return func(p *Processor) {
		p.mux.mu.Lock()
		defer p.mux.mu.Unlock()
		for _, t := range types {
			delete(p.mux.m, t)
		}
	}
}
