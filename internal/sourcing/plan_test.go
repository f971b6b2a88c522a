package sourcing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jaego/jaego/internal/inventory"
)

// referenceBest is the brute force: every set of 1..maxStores stores, every assignment of
// each line to a store of the set that has enough of it (or to none), the set's stores
// all used; the best rank of them all. ok is false when no store can supply any line.
func referenceBest(items []inventory.Item, cands []Candidate, maxStores int) (best Rank, ok bool) {
	n := len(cands)
	var set []int
	var sets func(from int)
	consider := func() {
		assign := make([]int, len(items))
		var try func(j int)
		try = func(j int) {
			if j == len(items) {
				r := Rank{Stores: len(set)}
				used := make([]bool, len(set))
				for l, m := range assign {
					if m >= 0 {
						used[m] = true
						r.Covered++
						r.Left += cands[set[m]].Available[l] - items[l].Qty
					}
				}
				for m, u := range used {
					if !u {
						return
					}
					r.Farthest = max(r.Farthest, cands[set[m]].DistanceKm)
				}
				if !ok || designBefore(r, best) {
					best, ok = r, true
				}
				return
			}
			assign[j] = -1
			try(j + 1)
			for m, ci := range set {
				if cands[ci].Available[j] >= items[j].Qty {
					assign[j] = m
					try(j + 1)
				}
			}
		}
		try(0)
	}
	sets = func(from int) {
		if len(set) > 0 {
			consider()
		}
		if len(set) == maxStores {
			return
		}
		for i := from; i < n; i++ {
			set = append(set, i)
			sets(i + 1)
			set = set[:len(set)-1]
		}
	}
	sets(0)
	return best, ok
}

// randomCase is a directory of up to 30 stores (distances with ties, scarce stock) and a
// basket of up to 6 lines.
func randomCase(rng *rand.Rand) ([]inventory.Item, []Candidate) {
	items := make([]inventory.Item, 1+rng.IntN(6))
	for j := range items {
		items[j] = inventory.Item{SKU: fmt.Sprintf("sku%d", j), Qty: int64(1 + rng.IntN(4))}
	}
	cands := make([]Candidate, 1+rng.IntN(30))
	for i := range cands {
		c := Candidate{Near: Near{Store: Store{ID: fmt.Sprintf("S%02d", i), Status: Open}, DistanceKm: float64(rng.IntN(20)) / 2}}
		c.Available = make([]int64, len(items))
		for j := range items {
			if rng.IntN(3) > 0 {
				c.Available[j] = int64(rng.IntN(7))
			}
		}
		cands[i] = c
	}
	ns := make([]Near, len(cands))
	for i, c := range cands {
		ns[i] = c.Near
	}
	SortNear(ns)
	byID := map[string]Candidate{}
	for _, c := range cands {
		byID[c.ID] = c
	}
	for i, n := range ns {
		cands[i] = byID[n.ID]
	}
	return items, cands
}

// TestRankAgainstBruteForce: over random directories, the first plan is always one the
// brute force ranks best, and every plan is valid, minimal and in rank order.
func TestRankAgainstBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 2026))
	for c := range 400 {
		items, cands := randomCase(rng)
		maxStores, want := 1+rng.IntN(3), 1+rng.IntN(5)
		plans := RankPlans(items, cands, maxStores, want)
		best, ok := referenceBest(items, cands, maxStores)
		if !ok {
			if len(plans) != 0 {
				t.Fatalf("case %d: no store can supply a line, but %d plans", c, len(plans))
			}
			continue
		}
		if len(plans) == 0 {
			t.Fatalf("case %d: the reference has a plan of rank %+v, RankPlans none", c, best)
		}
		if got := plans[0].Rank(); got != best {
			t.Fatalf("case %d (max_stores %d): first plan ranks %+v, the reference's best %+v\nplan %+v", c, maxStores, got, best, plans[0])
		}
		if len(plans) > want {
			t.Fatalf("case %d: %d plans, want at most %d", c, len(plans), want)
		}
		for i, p := range plans {
			checkPlan(t, c, items, cands, maxStores, p)
			if i > 0 && designBefore(p.Rank(), plans[i-1].Rank()) {
				t.Fatalf("case %d: plan %d ranks before plan %d", c, i, i-1)
			}
		}
	}
}

// checkPlan checks a plan's own numbers: every line once (supplied whole by a store that
// has it, or missing), every store supplies something, its rank is its own.
func checkPlan(t *testing.T, c int, items []inventory.Item, cands []Candidate, maxStores int, p Plan) {
	t.Helper()
	byID := map[string]Candidate{}
	for _, cd := range cands {
		byID[cd.ID] = cd
	}
	if len(p.Stores) == 0 || len(p.Stores) > maxStores {
		t.Fatalf("case %d: a plan of %d stores (max %d)", c, len(p.Stores), maxStores)
	}
	seen := map[string]bool{}
	r := Rank{Stores: len(p.Stores)}
	for _, part := range p.Stores {
		if len(part.Items) == 0 {
			t.Fatalf("case %d: store %s of a plan supplies nothing", c, part.Store)
		}
		cd := byID[part.Store]
		r.Farthest = max(r.Farthest, cd.DistanceKm)
		for _, it := range part.Items {
			j := slices.IndexFunc(items, func(x inventory.Item) bool { return x.SKU == it.SKU })
			if seen[it.SKU] || it.Qty != items[j].Qty || cd.Available[j] < it.Qty {
				t.Fatalf("case %d: line %v at %s (available %d) is wrong or twice", c, it, part.Store, cd.Available[j])
			}
			seen[it.SKU] = true
			r.Covered++
			r.Left += cd.Available[j] - it.Qty
		}
	}
	for _, it := range p.Missing {
		if seen[it.SKU] {
			t.Fatalf("case %d: line %s both supplied and missing", c, it.SKU)
		}
		seen[it.SKU] = true
	}
	if len(seen) != len(items) || p.Complete != (len(p.Missing) == 0) || r != p.Rank() {
		t.Fatalf("case %d: plan %+v: lines %d of %d, rank %+v (its own says %+v)", c, p, len(seen), len(items), r, p.Rank())
	}
}

func TestChooseExplainsNearerStores(t *testing.T) {
	t.Parallel()
	items := []inventory.Item{{SKU: "a", Qty: 2}, {SKU: "b", Qty: 1}}
	near := []Near{
		{Store: Store{ID: "S1", Status: Closed, Capabilities: []string{SameDay}}, DistanceKm: 0.5},
		{Store: Store{ID: "S2", Status: Open, Capabilities: []string{Pickup}}, DistanceKm: 1},
		{Store: Store{ID: "S3", Status: Open, Capabilities: []string{SameDay}}, DistanceKm: 2},
		{Store: Store{ID: "S4", Status: Open, Capabilities: []string{SameDay, Pickup}}, DistanceKm: 3},
		{Store: Store{ID: "S5", Status: Open, Capabilities: []string{SameDay}}, DistanceKm: 4},
	}
	plans, skips, _, err := Choose(items, near, readMap(map[string][]int64{"S3": {5, 0}, "S4": {2, 1}, "S5": {9, 9}}), SameDay, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 3 || plans[0].Stores[0].Store != "S4" || len(plans[0].Stores) != 1 {
		t.Fatalf("plans %+v: want S4 alone first", plans)
	}
	if plans[1].Stores[0].Store != "S5" || plans[2].Rank().Stores != 2 {
		t.Fatalf("plans %+v: want S5 alone, then a pair", plans)
	}
	want := []Skip{
		{Store: "S1", DistanceKm: 0.5, Reason: ReasonClosed},
		{Store: "S2", DistanceKm: 1, Reason: ReasonNoCapability},
		{Store: "S3", DistanceKm: 2, Reason: ReasonShort, Short: []inventory.Short{{SKU: "b", Qty: 1, Available: 0}}},
	}
	if fmt.Sprint(skips) != fmt.Sprint(want) {
		t.Fatalf("skipped %+v, want %+v", skips, want)
	}
	// No store supplies anything: no plan, and every store explained.
	plans, skips, _, _ = Choose([]inventory.Item{{SKU: "z", Qty: 1}}, near, readMap(map[string][]int64{"S3": {0}, "S4": {0}, "S5": {0}}), SameDay, 3, 3)
	if len(plans) != 0 || len(skips) != len(near) {
		t.Fatalf("plans %+v skips %+v: want none and all 5 explained", plans, skips)
	}
}

// readMap is a StockReader of fixed numbers.
func readMap(m map[string][]int64) StockReader {
	return func(stores []Near) ([][]int64, error) {
		out := make([][]int64, len(stores))
		for i, s := range stores {
			out[i] = m[s.ID]
		}
		return out, nil
	}
}

// TestChooseReadsNoMoreThanItNeeds: Choose, which reads the farther candidates only when
// the nearer ones do not settle the answer, answers what ranking every candidate answers
// (the same plans' ranks, the same stores passed over), over random directories where
// one store often has it all; and it did stop early in some of them.
func TestChooseReadsNoMoreThanItNeeds(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(25, 10))
	early := 0
	for c := range 500 {
		items := make([]inventory.Item, 1+rng.IntN(4))
		for j := range items {
			items[j] = inventory.Item{SKU: fmt.Sprintf("sku%d", j), Qty: int64(1 + rng.IntN(3))}
		}
		stock := map[string][]int64{}
		near := make([]Near, 5+rng.IntN(40))
		spread := []int{6, 60}[rng.IntN(2)] // few distinct distances: many ties at the edge of the first read
		for i := range near {
			st := Store{ID: fmt.Sprintf("S%02d", i), Status: Open, Capabilities: []string{SameDay}}
			switch rng.IntN(10) {
			case 0:
				st.Status = Closed
			case 1:
				st.Capabilities = []string{Pickup}
			}
			near[i] = Near{Store: st, DistanceKm: float64(rng.IntN(spread)) / 4}
			av := make([]int64, len(items))
			for j := range av {
				av[j] = int64(rng.IntN(5)) * int64(rng.IntN(2)+rng.IntN(2))
			}
			stock[st.ID] = av
		}
		SortNear(near)
		maxStores, want := 1+rng.IntN(3), 1+rng.IntN(3)
		plans, skips, n, err := Choose(items, near, readMap(stock), SameDay, maxStores, want)
		if err != nil {
			t.Fatal(err)
		}
		var all []Candidate
		for _, e := range Eligible(near, SameDay) {
			all = append(all, Candidate{Near: near[e], Available: stock[near[e].ID]})
		}
		ref := RankPlans(items, all, maxStores, want)
		refSkips := explain(items, near[:max(0, len(near))], all, ref, SameDay)
		if len(plans) != len(ref) {
			t.Fatalf("case %d: %d plans, reading all %d", c, len(plans), len(ref))
		}
		for i := range plans {
			if plans[i].Rank() != ref[i].Rank() {
				t.Fatalf("case %d: plan %d ranks %+v, reading all %+v", c, i, plans[i].Rank(), ref[i].Rank())
			}
		}
		if fmt.Sprint(skips) != fmt.Sprint(refSkips) {
			t.Fatalf("case %d: skipped %+v, reading all %+v", c, skips, refSkips)
		}
		if n < len(all) {
			early++
		}
	}
	if early == 0 {
		t.Fatal("Choose never stopped early: the test shows nothing")
	}
	t.Logf("%d of 500 queries settled by the first %d candidates", early, FirstRead)
}

func BenchmarkRankPlans(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	items := make([]inventory.Item, 5)
	for j := range items {
		items[j] = inventory.Item{SKU: fmt.Sprintf("sku%d", j), Qty: 2}
	}
	cands := make([]Candidate, MaxCandidates)
	for i := range cands {
		av := make([]int64, len(items))
		for j := range av {
			av[j] = int64(rng.IntN(4))
		}
		cands[i] = Candidate{Near: Near{Store: Store{ID: fmt.Sprintf("S%02d", i)}, DistanceKm: float64(i)}, Available: av}
	}
	for _, k := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("max_stores=%d", k), func(b *testing.B) {
			for b.Loop() {
				RankPlans(items, cands, k, DefaultPlans)
			}
		})
	}
}

// designBefore is design §15's order, written apart from Rank.Compare so that the brute
// force does not share its rules: complete plans first (then, among partial ones, more
// lines supplied), then fewer stores, then the nearer farthest store, then more left.
func designBefore(a, b Rank) bool {
	if a.Covered != b.Covered {
		return a.Covered > b.Covered
	}
	if a.Stores != b.Stores {
		return a.Stores < b.Stores
	}
	if a.Farthest != b.Farthest {
		return a.Farthest < b.Farthest
	}
	return a.Left > b.Left
}
