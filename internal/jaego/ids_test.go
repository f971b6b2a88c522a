package jaego

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// The loops of ValidStore and ValidSKU say what their patterns say: every identifier of
// up to 70 bytes drawn from an alphabet around the allowed one (edges, '.', '/', spaces,
// bytes ≥ 0x80, NUL), and the cases at the length limits.
func TestIDRulesMatchTheirPatterns(t *testing.T) {
	store, sku := regexp.MustCompile(storePattern), regexp.MustCompile(skuPattern)
	alphabet := []byte("aAzZ09_-./ @[`{\\x00\x7f\x80\xffé")
	check := func(id string) {
		if got, want := ValidStore(id), store.MatchString(id); got != want {
			t.Fatalf("ValidStore(%q) = %v, the pattern says %v", id, got, want)
		}
		if got, want := ValidSKU(id), sku.MatchString(id); got != want {
			t.Fatalf("ValidSKU(%q) = %v, the pattern says %v", id, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		b := make([]byte, rng.IntN(71))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
	for _, n := range []int{0, 1, 31, 32, 33, 63, 64, 65} {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a'
		}
		check(string(b))
	}
	check("S001")
	check("8809461234567")
	check("A.B")
	check("a\n")
}

func FuzzIDRules(f *testing.F) {
	store, sku := regexp.MustCompile(storePattern), regexp.MustCompile(skuPattern)
	for _, s := range []string{"S001", "a.b", "", "é", "a\n", "-_-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidStore(id) != store.MatchString(id) || ValidSKU(id) != sku.MatchString(id) {
			t.Fatalf("%q: store %v/%v sku %v/%v", id, ValidStore(id), store.MatchString(id), ValidSKU(id), sku.MatchString(id))
		}
	})
}
