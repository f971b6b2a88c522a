package http

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// TestLookupAnswerJSON: appendLookup writes what encoding/json writes of the lookupAnswer
// it stands for, for lookups of 0 to 50 keys with hits and misses in any order, and names
// that need escaping.
func TestLookupAnswerJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"S001", "8809461234567", "a<b>", "q\"", "é", "x.y-z_0"}
	for range 2000 {
		n := rng.IntN(51)
		found := make([]inventory.Lookup, n)
		keys := make([]string, n)
		ans := lookupAnswer{Items: []inventory.Stock{}, Missing: []string{}}
		for i := range found {
			keys[i] = names[rng.IntN(len(names))] + fmt.Sprint(i)
			if rng.IntN(3) == 0 {
				ans.Missing = append(ans.Missing, keys[i])
				continue
			}
			st := inventory.Stock{Store: "S" + fmt.Sprint(i), SKU: keys[i], OnHand: rng.Int64N(100) - 50, Reserved: rng.Int64N(9),
				Version: rng.Int64(), UpdatedAt: time.UnixMilli(rng.Int64N(4e12)).UTC(), Source: []string{"", "primary", "fallback"}[rng.IntN(3)]}
			found[i] = inventory.Lookup{Found: true, Stock: st}
			ans.Items = append(ans.Items, st)
		}
		want, err := json.Marshal(ans)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendLookup(nil, found, keys); string(got) != string(want) {
			t.Fatalf("appendLookup\n got %s\nwant %s", got, want)
		}
	}
}
