package billing

// SupportedVersions returns the Stripe API versions whose events the
// handlers are tested with, oldest first: each has Stripe's own object
// fixtures in internal/stripefixture, and the same customer lifecycles in
// each give the same records (ledger/versions_test.go). The README lists
// the same versions. 2025-05-28.basil stands for 2025-03-31.basil, whose
// stripe-mock releases the Go module proxy refuses: a later release of the
// same major version, with the same breaking changes.
//
// An event of another version is applied all the same: the handlers read
// every field that moved from each place it has been.
func SupportedVersions() []string {
	return []string{"2023-10-16", "2024-09-30.acacia", "2025-05-28.basil", "2025-09-30.clover", "2026-08-26.dahlia"}
}
