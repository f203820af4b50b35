// Package termtext is what of untrusted text reaches a person's terminal:
// a parked message's fields and body (anyone who can publish wrote them),
// Stripe's values in an audit. Nothing printed can move the cursor, clear
// the screen or fake a row of a table.
package termtext

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Cell is s as a table cell: "-" when empty, quoted Go-style
// (strconv.Quote) when it holds a rune that is not printable or a byte
// that is no UTF-8 (a terminal reading 8-bit controls takes 0x9b for an
// escape), so that a value can put no escape sequence or line break on
// the terminal.
func Cell(s string) string {
	switch {
	case s == "":
		return "-"
	case !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0:
		return strconv.Quote(s)
	}
	return s
}

// OneLine flattens s and cuts it to at most n runes for a table cell.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// Text is s with every rune a terminal could take for a control (but
// newline and tab) written as a Go escape: a body may hold anything.
func Text(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == '\t' || strconv.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// Time is t as the RabbitMQ UI's headers show it (RFC 3339, UTC), "-"
// when unset.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
