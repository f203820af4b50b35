package notify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/notify"
)

func TestLoadTemplates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, src, err string
	}{
		{name: "BadAction", file: "payment_failed.tmpl", src: "{{define \"subject\"}}x{{end}}\nHello\nDear {{.CustomerName}\nmore\n",
			err: "notify: template DIR/payment_failed.tmpl: template: payment_failed.tmpl:3: bad character U+007D '}'"},
		{name: "UnknownFunction", file: "dispute_opened.tmpl", src: "{{define \"subject\"}}x{{end}}\n\n{{frobnicate .Amount}}\n",
			err: "notify: template DIR/dispute_opened.tmpl: template: dispute_opened.tmpl:3: function \"frobnicate\" not defined"},
		{name: "NoSubject", file: "payment_failed.tmpl", src: "Hello {{.CustomerName}}\n",
			err: "notify: template DIR/payment_failed.tmpl: no {{define \"subject\"}}...{{end}}: the email's subject"},
		{name: "UnknownField", file: "payment_failed.tmpl", src: "{{define \"subject\"}}x{{end}}\nDear {{.Nmae}}\n",
			err: "notify: template DIR/payment_failed.tmpl on sample data: template: payment_failed.tmpl:2:7: executing \"payment_failed.tmpl\" at <.Nmae>: can't evaluate field Nmae in type notify.PaymentFailedData"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := notify.LoadTemplates(dir)
			if want := strings.ReplaceAll(tc.err, "DIR", dir); err == nil || err.Error() != want {
				t.Fatalf("LoadTemplates error = %v, want %s", err, want)
			}
		})
	}

	t.Run("FileReplacesDefault", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		src := "{{define \"subject\"}}Payment\nof {{.Amount}}\r\nBcc: x@example.com{{end}}Pay here: {{.InvoiceURL}}\n"
		if err := os.WriteFile(filepath.Join(dir, "payment_failed.tmpl"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		ts, err := notify.LoadTemplates(dir)
		if err != nil {
			t.Fatal(err)
		}
		subject, body, err := ts.Render(notify.PaymentFailed, notify.PaymentFailedData{Amount: "1.00 EUR", InvoiceURL: "https://invoice.stripe.com/i/x"})
		// A subject is one line whatever the template or the data hold.
		if err != nil || subject != "Payment of 1.00 EUR Bcc: x@example.com" || body != "Pay here: https://invoice.stripe.com/i/x\n" {
			t.Fatalf("Render = %q, %q, %v", subject, body, err)
		}
		// The file absent keeps the embedded default.
		if subject, _, _ := ts.Render(notify.DisputeOpened, notify.DisputeOpenedData{DisputeID: "dp_1", Amount: "2.00 EUR"}); subject != "Dispute dp_1 opened: 2.00 EUR" {
			t.Fatalf("default dispute subject = %q", subject)
		}
	})
}
