package reconcile

import (
	"fmt"
	"io"
	"strings"

	"github.com/stripe-billing/billing/internal/termtext"
)

// WriteEndpointChecks writes checks for a person (`billing endpoint
// check`): each endpoint, whether Stripe sends it anything, what it lacks
// and what it sends for nothing.
func WriteEndpointChecks(out io.Writer, checks []EndpointCheck) {
	for i, c := range checks {
		if i > 0 {
			fmt.Fprintln(out)
		}
		version := c.APIVersion
		if version == "" {
			version = "the account's default"
		}
		fmt.Fprintf(out, "%s %s (%s, API version %s)\n", termtext.Cell(c.ID), termtext.Cell(c.URL), termtext.Cell(c.Status), termtext.Cell(version))
		if !c.Enabled() {
			fmt.Fprintln(out, "  disabled: Stripe sends it nothing, so what it lacks loses nothing")
		}
		switch {
		case c.All:
			fmt.Fprintln(out, "  sends every event type (*): every needed type arrives; the worker records the others as ignored")
		case len(c.Missing) == 0:
			fmt.Fprintln(out, "  sends every needed type")
		default:
			fmt.Fprintf(out, "  lacks %d needed type(s): %s\n", len(c.Missing), strings.Join(c.Missing, ", "))
		}
		if len(c.Ignored) > 0 {
			fmt.Fprintf(out, "  sends %d type(s) the worker ignores: %s\n", len(c.Ignored), strings.Join(c.Ignored, ", "))
		}
	}
}

// EndpointsProblem says what loses events among checks: no enabled
// endpoint, or enabled ones that lack needed types; nil when nothing.
func EndpointsProblem(checks []EndpointCheck) error {
	lacking, enabled := 0, 0
	for _, c := range checks {
		if c.Lacking() {
			lacking++
		}
		if c.Enabled() {
			enabled++
		}
	}
	switch {
	case enabled == 0:
		return fmt.Errorf("endpoint check: no enabled webhook endpoint (%d disabled): Stripe sends nothing", len(checks))
	case lacking > 0:
		return fmt.Errorf("endpoint check: %d of %d enabled endpoint(s) lack needed event types", lacking, enabled)
	}
	return nil
}
