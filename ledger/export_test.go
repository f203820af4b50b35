package ledger

// WithoutHandlers drops the decoders of types: a worker of an older
// release, for tests of what a newer one makes of its events.
func WithoutHandlers(types ...string) Option {
	return func(p *Processor) {
		if p.skip == nil {
			p.skip = map[string]bool{}
		}
		for _, t := range types {
			p.skip[t] = true
		}
	}
}
