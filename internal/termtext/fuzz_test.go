package termtext_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stripe-billing/billing/internal/termtext"
)

// FuzzTermText holds what reaches a terminal from any bytes a message may
// carry: Cell and OneLine give one line of printable runes, Text nothing
// a terminal takes for a control but newlines and tabs, and Cell keeps a
// printable value as it is.
func FuzzTermText(f *testing.F) {
	for _, s := range []string{"", "invoice.paid", "evt_\x1b[2J\nevt_fake", "a\tb\r\n", "\xff\xfe", "\u202eevil", strings.Repeat("é", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, out := range map[string]string{"Cell": termtext.Cell(s), "OneLine": termtext.Cell(termtext.OneLine(s, 300))} {
			if strings.IndexFunc(out, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 || !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q: a rune a terminal may take for a control", name, s, out)
			}
		}
		if n := utf8.RuneCountInString(termtext.OneLine(s, 300)); n > 300 {
			t.Fatalf("OneLine(%q, 300) has %d runes", s, n)
		}
		if out := termtext.Text(s); strings.IndexFunc(out, func(r rune) bool { return r != '\n' && r != '\t' && !strconv.IsPrint(r) }) >= 0 {
			t.Fatalf("Text(%q) = %q: a control rune", s, out)
		}
		if s != "" && utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) < 0 && termtext.Cell(s) != s {
			t.Fatalf("Cell(%q) = %q: a printable value changed", s, termtext.Cell(s))
		}
	})
}
