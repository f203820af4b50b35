package retry

// Headers of our own on retried and parked messages. None has the x- prefix:
// RabbitMQ owns those, and copying x-death into a republished message makes
// dead-letter cycle detection drop it silently.
const (
	// HeaderAttempt is the number of failed attempts so far. It is honoured
	// only on a delivery that came back from a delay tier.
	HeaderAttempt = "billing-attempt"
	// HeaderReplays counts how often a parked event was sent back by a
	// person or the sweep.
	HeaderReplays = "billing-replays"
	// HeaderRedrives counts the sweep's automatic re-drives of a parked event.
	HeaderRedrives = "billing-redrives"

	// The reason a message was parked in the DLQ.
	HeaderError         = "billing-error"
	HeaderErrorClass    = "billing-error-class"
	HeaderFirstFailedAt = "billing-first-failed-at" // RFC 3339, UTC
	HeaderLastFailedAt  = "billing-last-failed-at"  // RFC 3339, UTC
	HeaderSourceQueue   = "billing-source-queue"
	HeaderWorkerHost    = "billing-worker-host"
	HeaderParkedAt      = "billing-parked-at" // RFC 3339, UTC
)
