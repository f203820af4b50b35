package stripejson_test

import (
	"fmt"

	"github.com/stripe-billing/billing/billing/stripejson"
)

// Scan tells a key that is absent from one that is null or "": an
// invoice.updated that does not carry "number" leaves the row's number
// alone; one that carries null clears it.
func ExampleScan() {
	keys, objectType, id := stripejson.Scan([]byte(`{"id":"in_1","object":"invoice","number":null,"memo":"","total":900}`))
	fmt.Println(objectType, id)
	for _, k := range []string{"number", "memo", "total", "customer"} {
		held, ok := keys.Get(k)
		fmt.Printf("%s: carried %v, missing %v, value %v\n", k, ok, keys.Missing(k), ok && held == stripejson.HeldValue)
	}
	// Output:
	// invoice in_1
	// number: carried true, missing true, value false
	// memo: carried true, missing true, value false
	// total: carried true, missing false, value true
	// customer: carried false, missing true, value false
}
