package termtext_test

import (
	"fmt"

	"github.com/stripe-billing/billing/internal/termtext"
)

// A hand-published message's type that tries to clear the screen and fake
// a second row shows quoted, as does a byte that is no UTF-8 (0x9b is an
// 8-bit escape); a body keeps its lines, its escapes written
// out.
func ExampleCell() {
	fmt.Println(termtext.Cell("invoice.paid"))
	fmt.Println(termtext.Cell("evt_\x1b[2J\nevt_fake"))
	fmt.Println(termtext.Cell(""))
	fmt.Println(termtext.Cell("evt_\x9b2J"))
	fmt.Println(termtext.Text("{\"a\":\"\x1b[31m\"}\n"))
	// Output:
	// invoice.paid
	// "evt_\x1b[2J\nevt_fake"
	// -
	// "evt_\x9b2J"
	// {"a":"\x1b[31m"}
}
