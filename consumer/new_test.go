package consumer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/consumer"
)

// TestNewRefusesBadConfig: each setting New cannot run with is named in
// its error, the concurrency bounded by the channels a connection holds
// (a channel per worker).
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	valid := consumer.Config{Queue: "work", Concurrency: 1, ShutdownTimeout: time.Second}
	for _, tt := range []struct {
		name string
		edit func(*consumer.Config)
		want string
	}{
		{"no queue", func(c *consumer.Config) { c.Queue = "" }, "consumer: no queue"},
		{"no worker", func(c *consumer.Config) { c.Concurrency = 0 }, "consumer: concurrency 0, want 1 to 2047 (a channel each)"},
		{"more workers than channels", func(c *consumer.Config) { c.Concurrency = consumer.MaxConcurrency + 1 }, "consumer: concurrency 2048, want 1 to 2047 (a channel each)"},
		{"no shutdown timeout", func(c *consumer.Config) { c.ShutdownTimeout = 0 }, "consumer: shutdown timeout 0s, want positive"},
		{"batches without a batch handler", func(c *consumer.Config) { c.BatchSize = 16 }, "consumer: batch size 16 without a batch handler"},
		{"negative batch wait", func(c *consumer.Config) { c.BatchWait = -time.Second }, "consumer: batch wait -1s, want zero or more"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			c, err := consumer.New(cfg, nil, nil, nil, nil)
			if c != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, %v; want no consumer and an error with %q", c, err, tt.want)
			}
		})
	}
	// The valid config is refused only for the parts left out here.
	_, err := consumer.New(valid, nil, nil, nil, nil)
	if got := err.Error(); strings.Contains(got, "queue") || strings.Contains(got, "concurrency") || strings.Contains(got, "batch") || strings.Contains(got, "shutdown") {
		t.Errorf("New(valid) = %q: it names a setting that is valid", got)
	}
}
