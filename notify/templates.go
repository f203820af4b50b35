package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed templates/*.tmpl
var defaultTemplates embed.FS

// The notices, each a template file <notice>.tmpl.
const (
	PaymentFailed = "payment_failed"
	DisputeOpened = "dispute_opened"
)

// PaymentFailedData is what payment_failed.tmpl reads. Every string is
// Stripe's or the store's, on one line (line breaks become spaces).
type PaymentFailedData struct {
	CustomerID, CustomerName, CustomerEmail string
	ChargeID                                string
	// Amount is the invoice's amount due, else the charge's, with its
	// currency: "12.50 USD".
	Amount                               string
	InvoiceID, InvoiceNumber, InvoiceURL string // empty when no invoice is stored
	FailureCode, FailureMessage          string
	Livemode                             bool

	paymentIntent string
}

// DisputeOpenedData is what dispute_opened.tmpl reads.
type DisputeOpenedData struct {
	DisputeID, ChargeID, CustomerID, CustomerEmail string
	Amount, Reason, Status, EvidenceDueBy          string
	Livemode                                       bool
}

// samples are the data each template is tried on at start, so that a
// field the data lacks is refused there and not at the first email.
var samples = map[string]any{
	PaymentFailed: PaymentFailedData{CustomerID: "cus_1", CustomerName: "Ada", CustomerEmail: "ada@example.com", ChargeID: "ch_1",
		Amount: "12.50 USD", InvoiceID: "in_1", InvoiceNumber: "A-0001", InvoiceURL: "https://invoice.stripe.com/i/1",
		FailureCode: "card_declined", FailureMessage: "Your card was declined."},
	DisputeOpened: DisputeOpenedData{DisputeID: "dp_1", ChargeID: "ch_1", CustomerID: "cus_1", Amount: "12.50 USD", Reason: "fraudulent",
		Status: "needs_response", EvidenceDueBy: "2026-12-21"},
}

// Templates holds each notice's template: a "subject" template defined
// in it, and the body.
type Templates struct {
	byNotice map[string]*template.Template
}

// LoadTemplates reads the embedded templates, each replaced by
// dir/<notice>.tmpl where that file exists (dir "" keeps them all). A
// template that does not parse, defines no "subject", or fails on sample
// data is refused with its file and line.
func LoadTemplates(dir string) (*Templates, error) {
	ts := &Templates{byNotice: map[string]*template.Template{}}
	for _, notice := range []string{PaymentFailed, DisputeOpened} {
		name := notice + ".tmpl"
		src, err := fs.ReadFile(defaultTemplates, "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("notify: embedded template %s: %w", name, err)
		}
		path := "(default) " + name
		if dir != "" {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			switch {
			case err == nil:
				src, path = b, p
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("notify: template %s: %w", p, err)
			}
		}
		t, err := template.New(name).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", path, err)
		}
		if t.Lookup("subject") == nil {
			return nil, fmt.Errorf("notify: template %s: no {{define \"subject\"}}...{{end}}: the email's subject", path)
		}
		ts.byNotice[notice] = t
		if _, _, err := ts.Render(notice, samples[notice]); err != nil {
			return nil, fmt.Errorf("notify: template %s on sample data: %w", path, err)
		}
	}
	return ts, nil
}

// Render is notice's subject (one line) and body for data.
func (ts *Templates) Render(notice string, data any) (subject, body string, err error) {
	t := ts.byNotice[notice]
	if t == nil {
		return "", "", fmt.Errorf("notify: no template for %q", notice)
	}
	var s, b bytes.Buffer
	if err := t.ExecuteTemplate(&s, "subject", data); err != nil {
		return "", "", err
	}
	if err := t.Execute(&b, data); err != nil {
		return "", "", err
	}
	return strings.Join(strings.Fields(s.String()), " "), b.String(), nil
}
