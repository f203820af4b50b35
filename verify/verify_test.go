package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/reconcile"
	"github.com/stripe-billing/billing/verify"
)

func TestForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id, typ string
		want          error
	}{
		{"Stripe's", "evt_1NqAbC_x", "invoice.payment_succeeded", nil},
		{"v2 thin event type", "evt_1", "v1.billing.meter.error_report_triggered", nil},
		{"not evt_", "cus_1", "invoice.paid", verify.ErrBadID},
		{"evt_ alone", "evt_", "invoice.paid", verify.ErrBadID},
		{"dash", "evt_1-2", "invoice.paid", verify.ErrBadID},
		{"path", "evt_../../v1/customers", "invoice.paid", verify.ErrBadID},
		{"control character", "evt_1\x1b[2J", "invoice.paid", verify.ErrBadID},
		{"trailing newline", "evt_1\n", "invoice.paid", verify.ErrBadID},
		{"non-ASCII letter", "evt_1é", "invoice.paid", verify.ErrBadID},
		{"upper-case prefix", "EVT_1", "invoice.paid", verify.ErrBadID},
		{"id of 255 bytes", "evt_" + strings.Repeat("a", 251), "invoice.paid", nil},
		{"id of 256 bytes", "evt_" + strings.Repeat("a", 252), "invoice.paid", verify.ErrBadID},
		{"upper-case type", "evt_1", "Invoice.paid", verify.ErrBadType},
		{"type with a routing wildcard", "evt_1", "invoice.#", verify.ErrBadType},
		{"empty type", "evt_1", "", verify.ErrBadType},
		{"type with a space", "evt_1", "invoice paid", verify.ErrBadType},
		{"type with a trailing newline", "evt_1", "invoice.paid\n", verify.ErrBadType},
		{"type of 255 bytes", "evt_1", strings.Repeat("a", 255), nil},
		{"type of 256 bytes", "evt_1", strings.Repeat("a", 256), verify.ErrBadType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := verify.Form(tt.id, tt.typ); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Form(%q, %q) = %v, want %v", tt.id, tt.typ, err, tt.want)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	now := time.Now()
	body := []byte(`{"id":"evt_1"}`)
	secrets := []string{"whsec_new", "whsec_old"}
	tests := []struct {
		name      string
		header    string
		tolerance time.Duration
		want      error
	}{
		{"signed now", testenv.Sign(body, "whsec_new", now), 5 * time.Minute, nil},
		{"second secret", testenv.Sign(body, "whsec_old", now), 5 * time.Minute, nil},
		{"other secret", testenv.Sign(body, "whsec_other", now), 5 * time.Minute, webhook.ErrNoValidSignature},
		{"too old for the api", testenv.Sign(body, "whsec_new", now.Add(-time.Hour)), 5 * time.Minute, webhook.ErrTooOld},
		{"old is fine for the worker", testenv.Sign(body, "whsec_new", now.Add(-72*time.Hour)), 0, nil},
		{"in the future", testenv.Sign(body, "whsec_new", now.Add(10*time.Minute)), 5 * time.Minute, verify.ErrFutureSignature},
		{"within the tolerance ahead", testenv.Sign(body, "whsec_new", now.Add(time.Minute)), 5 * time.Minute, nil},
		{"no header", "", 0, webhook.ErrNotSigned},
		{"garbage", "garbage", 0, webhook.ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := verify.Signature(body, tt.header, secrets, tt.tolerance, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Signature = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestVerify covers the ways a message is trusted or not; the consumer's
// TestOnlyStripeWrites shows the same through the whole worker.
func TestVerify(t *testing.T) {
	t.Parallel()
	mock := testenv.StripeMock(t)
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: mock})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"api_version":"2025-03-31.basil","livemode":true,"account":"acct_1","data":{"object":{"id":"in_1"}}}`) // now
	future := []byte(`{"id":"evt_f","object":"event","type":"invoice.paid","created":4102444800,"data":{"object":{"id":"in_1"}}}`)
	badType := []byte(`{"id":"evt_t","object":"event","type":"INVOICE","created":1780315200,"data":{"object":{"id":"in_1"}}}`)
	sig := func(b []byte, secret string) string { return testenv.Sign(b, secret, now.Add(-72*time.Hour)) }
	type testCase struct {
		name        string
		fetch       bool
		m           verify.Message
		wantType    string
		wantFetched bool
		wantReason  verify.Reason
	}
	tests := []testCase{
		{"signed, days old", false, verify.Message{ID: "evt_s", Body: body, Signature: sig(body, testenv.WebhookSecret)}, "invoice.paid", false, ""},
		{"signed, created in 2100", true, verify.Message{ID: "evt_f", Body: future, Signature: sig(future, testenv.WebhookSecret)}, "", false, verify.FutureCreated},
		{"signed, bad type", true, verify.Message{ID: "evt_t", Body: badType, Signature: sig(badType, testenv.WebhookSecret)}, "", false, verify.BadType},
		{"unsigned, no key", false, verify.Message{ID: "evt_s", Body: body}, "", false, verify.NoAPIKey},
		{"unsigned, bad id, no fetch", true, verify.Message{ID: "evt_x y", Body: body}, "", false, verify.BadID},
		{"unsigned: Stripe's copy", true, verify.Message{ID: "evt_s", Body: body}, "plan.created", true, ""},
		{"rotated-out secret: Stripe's copy", true, verify.Message{ID: "evt_s", Body: body, Signature: sig(body, "whsec_gone")}, "plan.created", true, ""},
		{"id only: Stripe's copy", true, verify.Message{ID: "evt_only", Body: []byte(`{"id":"evt_only"}`)}, "plan.created", true, ""},
	}
	// Bodies not read one way, or no event: Malformed whether signed or
	// not (fails closed), and never fetched (a fetch would answer
	// plan.created).
	for name, b := range map[string][]byte{
		"not JSON":             []byte(`hello`),
		"ID beside id":         []byte(`{"ID":"evt_other","id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"data":{"object":{}}}`),
		"escaped type":         []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","typ\u0065":"invoice.voided","created":1780315200,"data":{"object":{}}}`),
		"invalid UTF-8":        []byte("{\"id\":\"evt_s\",\"object\":\"event\",\"type\":\"invoice.paid\",\"created\":1780315200,\"data\":{\"object\":{}},\"note\":\"\xff\"}"),
		"nested 100 deep":      []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"data":{"object":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}}`),
		"over the cap":         []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"data":{"object":{}},"note":"` + strings.Repeat("a", verify.DefaultMaxBodyBytes) + `"}`),
		"data not an object":   []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"data":"not an object"}`),
		"livemode not a bool":  []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"livemode":"true","data":{"object":{}}}`),
		"not an event":         []byte(`{"id":"evt_s","object":"customer","type":"invoice.paid","created":1780315200,"data":{"object":{}}}`),
		"no created":           []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","data":{"object":{}}}`),
		"no data":              []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200}`),
		"data.object null":     []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"data":{"object":null}}`),
		"data.object an array": []byte(`{"id":"evt_s","object":"event","type":"invoice.paid","created":1780315200,"data":{"object":[]}}`),
	} {
		tests = append(tests, testCase{"signed, " + name, true, verify.Message{ID: "evt_s", Body: b, Signature: sig(b, testenv.WebhookSecret)}, "", false, verify.Malformed})
		if checked := map[string]bool{"not an event": true, "no created": true, "no data": true, "data.object null": true}; !checked[name] { // unsigned: only Stripe's copy counts
			tests = append(tests, testCase{"unsigned, " + name, true, verify.Message{ID: "evt_s", Body: b}, "", false, verify.Malformed})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := verify.Config{Secrets: []string{"whsec_other", testenv.WebhookSecret}, Now: func() time.Time { return now }}
			if tt.fetch {
				cfg.Fetcher = fetcher
			}
			v, err := verify.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := v.Verify(context.Background(), tt.m)
			if tt.wantReason != "" {
				if failure.Of(err) != failure.Unverified || verify.ReasonOf(err) != tt.wantReason {
					t.Fatalf("Verify = %v (class %s), want unverified %s", err, failure.Of(err), tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if ev.ID != tt.m.ID || ev.Type != tt.wantType || ev.Fetched != tt.wantFetched {
				t.Errorf("event %s %s fetched %v, want %s %s fetched %v", ev.ID, ev.Type, ev.Fetched, tt.m.ID, tt.wantType, tt.wantFetched)
			}
			if !tt.wantFetched && (string(ev.Body) != string(tt.m.Body) || ev.Signature != tt.m.Signature) {
				t.Errorf("signed body or signature changed: %s, %q", ev.Body, ev.Signature)
			}
			if tt.wantFetched && ev.Signature != "" {
				t.Errorf("Stripe's copy carries signature %q", ev.Signature)
			}
			// The envelope is Body's, as ReadEnvelope reads it.
			if want, err := verify.ReadEnvelope(ev.Body); err != nil || !reflect.DeepEqual(ev.Envelope, want) {
				t.Errorf("envelope %+v, Body's %+v (%v)", ev.Envelope, want, err)
			}
		})
	}
}

func TestValidAccount(t *testing.T) {
	t.Parallel()
	for account, want := range map[string]bool{
		"acct_1Nv0FGQ9RKHgCVdK":            true,
		"acct_" + strings.Repeat("a", 250): true,
		"acct_" + strings.Repeat("a", 251): false,
		"acct_":                            false,
		"":                                 false,
		"ACCT_1":                           false,
		"cus_1":                            false,
		"acct_1\r\nStripe-Account: acct_2": false,
		"acct_1\n":                         false,
		"acct_1 ":                          false,
		"acct_1-2":                         false,
		"acct_1_2":                         false,
		"acct_1é":                          false,
		"acct_1\x00":                       false,
	} {
		if got := verify.ValidAccount(account); got != want {
			t.Errorf("ValidAccount(%q) = %v, want %v", account, got, want)
		}
	}
}

// TestVerifyClaimedAccount: an unsigned message's account scopes the
// fetch only when it has Stripe's form; any other is unverified
// (bad_account) without a call. Stripe's 403 or 404 for the account
// claimed is unverified (unknown_event), never transient.
func TestVerifyClaimedAccount(t *testing.T) {
	t.Parallel()
	var calls []string
	var mu sync.Mutex
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		account := r.Header.Get("Stripe-Account")
		mu.Lock()
		calls = append(calls, account)
		mu.Unlock()
		switch account {
		case "acct_stranger":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":{"message":"The provided key does not have access to account"}}`))
		case "acct_none":
			w.WriteHeader(http.StatusNotFound)
		default:
			_, _ = fmt.Fprintf(w, `{"id":%q,"object":"event","type":"invoice.paid","created":1780315200,"account":%q,"data":{"object":{}}}`, path.Base(r.URL.Path), account)
		}
	}))
	defer stripe.Close()
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: stripe.URL})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	v, err := verify.New(verify.Config{Secrets: []string{testenv.WebhookSecret}, Fetcher: fetcher, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		account string
		want    verify.Reason // "" applies Stripe's copy
		call    bool
	}{
		{"acct_1Nv0FGQ9RKHgCVdK", "", true},
		{"acct_stranger", verify.UnknownEvent, true},
		{"acct_none", verify.UnknownEvent, true},
		{"acct_1\r\nStripe-Account: acct_2", verify.BadAccount, false},
		{"acct_../../v1/customers", verify.BadAccount, false},
		{"acct_", verify.BadAccount, false},
		{"cus_1", verify.BadAccount, false},
	}
	for i, tt := range tests {
		id := fmt.Sprintf("evt_acct%d", i)
		body, _ := json.Marshal(map[string]any{"id": id, "type": "invoice.paid", "created": now.Unix(), "account": tt.account})
		mu.Lock()
		before := len(calls)
		mu.Unlock()
		ev, err := v.Verify(context.Background(), verify.Message{ID: id, Type: "invoice.paid", Body: body})
		switch {
		case tt.want == "" && (err != nil || !ev.Fetched):
			t.Errorf("account %q: %v, want Stripe's copy", tt.account, err)
		case tt.want != "" && (failure.Of(err) != failure.Unverified || verify.ReasonOf(err) != tt.want):
			t.Errorf("account %q: %v (class %s), want unverified %s", tt.account, err, failure.Of(err), tt.want)
		}
		mu.Lock()
		called := len(calls) > before
		mu.Unlock()
		if called != tt.call {
			t.Errorf("account %q: Stripe called %v, want %v", tt.account, called, tt.call)
		}
	}
}
