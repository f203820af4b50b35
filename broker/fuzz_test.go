package broker_test

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/verify"
)

// headerValue is the AMQP header value of the type kind picks, made of
// the fuzzed s, n and f: each type the readers switch on, and one they
// do not know.
func headerValue(kind uint8, s string, n int64, f float64) any {
	switch kind % 15 {
	case 0:
		return int(n)
	case 1:
		return int8(n)
	case 2:
		return int16(n)
	case 3:
		return int32(n)
	case 4:
		return n
	case 5:
		return uint8(n)
	case 6:
		return uint16(n)
	case 7:
		return uint32(n)
	case 8:
		return uint64(n)
	case 9:
		return float32(f)
	case 10:
		return f
	case 11:
		return s
	case 12:
		return []byte(s)
	case 13:
		return time.Unix(n%(1<<35), 0)
	default:
		return []any{s, n}
	}
}

// FuzzHeaders reads fuzzed headers of every AMQP type as the consumer,
// the router and the DLQ tools do (counts, text, times, the attempt):
// never a panic, a count always within [0, MaxInt32], an attempt number
// always at least 1, a string count read as strconv reads it.
func FuzzHeaders(f *testing.F) {
	for kind := range uint8(15) {
		f.Add(kind, "3", int64(3), 3.0, true)
	}
	f.Add(uint8(11), " -7 ", int64(-7), -7.5, true)
	f.Add(uint8(8), "", int64(-1), math.NaN(), true)
	f.Add(uint8(10), "2026-05-01T12:00:00Z", int64(math.MaxInt64), math.Inf(1), false)
	f.Add(uint8(12), "9999999999999", int64(math.MinInt64), 1e300, false)
	f.Fuzz(func(t *testing.T, kind uint8, s string, n int64, fl float64, retried bool) {
		v := headerValue(kind, s, n, fl)
		h := amqp.Table{}
		for _, k := range []string{broker.HeaderAttempt, broker.HeaderReplays, broker.HeaderRedrives, broker.HeaderFirstFailedAt, broker.HeaderStripeSignature} {
			h[k] = v
		}
		got := broker.HeaderInt(h, broker.HeaderAttempt)
		if got < 0 || got > math.MaxInt32 {
			t.Fatalf("HeaderInt(%T %v) = %d, out of a count's range", v, v, got)
		}
		if str, ok := v.(string); ok {
			want, err := strconv.Atoi(strings.TrimSpace(str))
			if err != nil || want < 0 || want > math.MaxInt32 {
				want = 0
			}
			if got != want {
				t.Fatalf("HeaderInt(%q) = %d, want %d", str, got, want)
			}
		}
		_ = broker.HeaderString(h, broker.HeaderStripeSignature)
		_ = broker.HeaderTime(h, broker.HeaderFirstFailedAt)
		d := amqp.Delivery{Exchange: envTopo.Events, Headers: h}
		if retried {
			d.Exchange = envTopo.Return
		}
		if a := broker.ReadAttempt(d, envTopo); a.Number() < 1 || a.Replays < 0 {
			t.Fatalf("ReadAttempt of %T %v = %+v: attempt %d", v, v, a, a.Number())
		}
		_ = broker.ReplayCopy(d, true)
		_ = broker.RetryCopy(d)
	})
}

// FuzzIdentity reads a message's id and type as the consumer and the DLQ
// tools do: properties first; from the body otherwise, and then as the
// api and the verifier read it (verify.ReadEnvelope) whenever they accept
// the body.
func FuzzIdentity(f *testing.F) {
	for _, v := range stripefixture.Versions() {
		for _, b := range stripefixture.Events(v) {
			f.Add("", "", b)
		}
	}
	f.Add("evt_1", "invoice.paid", []byte(`{"id":"evt_2","type":"x"}`))
	f.Add("", "", []byte(`{"ID":"evt_1","type":"x","id":"evt_2"}`))
	f.Fuzz(func(t *testing.T, messageID, messageType string, body []byte) {
		id, typ := broker.Identity(messageID, messageType, body)
		if messageID != "" && id != messageID || messageType != "" && typ != messageType {
			t.Fatalf("Identity(%q, %q) = %q, %q: the properties must win", messageID, messageType, id, typ)
		}
		env, err := verify.ReadEnvelope(body)
		if err != nil {
			return
		}
		if messageID == "" && id != env.ID || messageType == "" && typ != env.Type {
			t.Fatalf("Identity read %q %q from %q, the api %q %q", id, typ, body, env.ID, env.Type)
		}
	})
}
