package sourcing

import (
	"github.com/jaego/jaego/internal/inventory"
)

// Limits of a sourcing query.
const (
	MaxStoresPerPlan = 3  // max_stores: a basket is split over at most 3 stores
	MaxPlans         = 10 // plans: how many plans one answer gives at most
	DefaultPlans     = 3
	// MaxCandidates bounds the search: the nearest 50 stores within the radius are read,
	// the others are not considered. With max_stores 3 that is at most 50 + 1,225 + 19,600
	// store sets, each judged in one pass over the basket.
	MaxCandidates = 50
)

// Candidate is a store that may fill lines of a basket: open, with the capability asked,
// and what it has available of each line (Available[j] for line j).
type Candidate struct {
	Near
	Available []int64
}

// Part is what one store of a plan supplies: whole lines, in basket order.
type Part struct {
	Store      string           `json:"store"`
	DistanceKm float64          `json:"distance_km"`
	Items      []inventory.Item `json:"items"`
}

// Plan is a set of stores that fill a basket (all of it when Complete; otherwise Missing
// says which lines none of them can supply).
type Plan struct {
	Stores   []Part           `json:"stores"`
	Complete bool             `json:"complete"`
	Missing  []inventory.Item `json:"missing,omitempty"`
	rank     Rank
}

// Rank is how a plan compares (design §15): more of the basket covered first (so complete
// plans first), then fewer stores, then the nearer farthest store, then the more left
// available after the order at the stores that supply it (it keeps stock for the next
// order).
type Rank struct {
	Covered  int     // lines supplied
	Stores   int     // stores used
	Farthest float64 // km to the farthest store used
	Left     int64   // Σ over the lines supplied of (available − qty) at their store
}

// Rank is the plan's rank.
func (p Plan) Rank() Rank { return p.rank }

// Compare is negative when r ranks before o, positive after, 0 for a tie.
func (r Rank) Compare(o Rank) int {
	switch {
	case r.Covered != o.Covered:
		return o.Covered - r.Covered
	case r.Stores != o.Stores:
		return r.Stores - o.Stores
	case r.Farthest < o.Farthest:
		return -1
	case r.Farthest > o.Farthest:
		return 1
	case r.Left > o.Left:
		return -1
	case r.Left < o.Left:
		return 1
	}
	return 0
}

// RankPlans returns up to want plans for items from cands (nearest first), best first, of
// at most maxStores stores each; a line is never split. Every plan is minimal: each store
// of it supplies a line, and each line goes to the store of the plan that has the most of
// it (the nearer one on a tie), which maximises what is left.
//
// The search is exhaustive over the sets of up to maxStores candidates that can supply a
// line at all, by size; it stops after a size once it holds want complete plans, since a
// larger set ranks after every one of them.
func RankPlans(items []inventory.Item, cands []Candidate, maxStores, want int) []Plan {
	var usable []int
	for i, c := range cands {
		for j, it := range items {
			if c.Available[j] >= it.Qty {
				usable = append(usable, i)
				break
			}
		}
	}
	s := search{items: items, cands: cands, want: want, assign: make([]int, len(items))}
	for size := 1; size <= maxStores && size <= len(usable); size++ {
		s.walk(usable, 0, size)
		if s.complete >= want {
			break
		}
	}
	plans := make([]Plan, len(s.top))
	for i, t := range s.top {
		plans[i] = s.build(t.members, t.rank)
	}
	return plans
}

type ranked struct {
	members []int
	rank    Rank
}

type search struct {
	items    []inventory.Item
	cands    []Candidate
	want     int
	members  []int // the set being judged: candidate indexes, ascending
	assign   []int // line → index into members, -1: not supplied
	top      []ranked
	complete int // complete plans in top
}

func (s *search) walk(usable []int, from, size int) {
	if len(s.members) == size {
		if r, ok := s.judge(); ok {
			s.keep(r)
		}
		return
	}
	for k := from; k <= len(usable)-(size-len(s.members)); k++ {
		s.members = append(s.members, usable[k])
		s.walk(usable, k+1, size)
		s.members = s.members[:len(s.members)-1]
	}
}

// judge assigns each line of the basket to the member with the most of it and ranks the
// set; false when a member supplies nothing (the set without it is the better plan).
func (s *search) judge() (Rank, bool) {
	var used uint8 // a bit per member: at most 3
	r := Rank{Stores: len(s.members)}
	for j, it := range s.items {
		s.assign[j] = -1
		best := int64(-1)
		for m, ci := range s.members {
			if a := s.cands[ci].Available[j]; a >= it.Qty && a > best {
				s.assign[j], best = m, a
			}
		}
		if s.assign[j] >= 0 {
			used |= 1 << s.assign[j]
			r.Covered++
			r.Left += best - it.Qty
		}
	}
	if used != 1<<len(s.members)-1 {
		return r, false
	}
	for _, ci := range s.members {
		r.Farthest = max(r.Farthest, s.cands[ci].DistanceKm)
	}
	return r, true
}

// keep puts the judged set among the best want, in rank order (a tie keeps the set found
// first: nearer stores first).
func (s *search) keep(r Rank) {
	at := len(s.top)
	for at > 0 && r.Compare(s.top[at-1].rank) < 0 {
		at--
	}
	if at >= s.want {
		return
	}
	if len(s.top) == s.want {
		if s.top[len(s.top)-1].rank.Covered == len(s.items) {
			s.complete--
		}
		s.top = s.top[:len(s.top)-1]
	}
	s.top = append(s.top, ranked{})
	copy(s.top[at+1:], s.top[at:])
	s.top[at] = ranked{members: append([]int(nil), s.members...), rank: r}
	if r.Covered == len(s.items) {
		s.complete++
	}
}

// build makes the plan of a kept set.
func (s *search) build(members []int, r Rank) Plan {
	s.members = members
	s.judge()
	p := Plan{Stores: make([]Part, len(members)), Complete: r.Covered == len(s.items), rank: r}
	for m, ci := range members {
		p.Stores[m] = Part{Store: s.cands[ci].ID, DistanceKm: s.cands[ci].DistanceKm, Items: []inventory.Item{}}
	}
	for j, it := range s.items {
		if m := s.assign[j]; m >= 0 {
			p.Stores[m].Items = append(p.Stores[m].Items, it)
		} else {
			p.Missing = append(p.Missing, it)
		}
	}
	return p
}

// Why a store was passed over.
const (
	ReasonShort        = "short"         // it lacks lines of the basket (Short says which)
	ReasonClosed       = "closed"        // its status is closed
	ReasonNoCapability = "no_capability" // it lacks the capability asked for
)

// Skip is a store that was passed over, and why.
type Skip struct {
	Store      string            `json:"store"`
	DistanceKm float64           `json:"distance_km"`
	Reason     string            `json:"reason"`
	Short      []inventory.Short `json:"short,omitempty"`
}

// Eligible is the indexes of the stores of near (nearest first) that may be chosen: open,
// with the capability (none asked: every open store), at most MaxCandidates of them.
func Eligible(near []Near, capability string) []int {
	var out []int
	for i := range near {
		if len(out) < MaxCandidates && near[i].Status == Open && near[i].Can(capability) {
			out = append(out, i)
		}
	}
	return out
}

// FirstRead is how many of the nearest candidates Choose reads first: when they hold the
// plans asked for, each one store that has it all, the farther ones cannot rank before
// them and are not read.
const FirstRead = 10

// StockReader answers the available stock of every line at each of the stores, in order.
type StockReader func(stores []Near) ([][]int64, error)

// Choose ranks the plans for items over the eligible stores of near (nearest first), and
// explains every store nearer than the best plan's farthest store that is not in it (every
// store, when there is no plan). It reads the stock of the FirstRead nearest candidates,
// and of the others only if those do not hold want complete one-store plans all nearer
// than the next candidate (then no plan with a farther store can rank before them). It
// answers how many candidates it read.
func Choose(items []inventory.Item, near []Near, read StockReader, capability string, maxStores, want int) ([]Plan, []Skip, int, error) {
	eligible := Eligible(near, capability)
	if len(eligible) > 0 {
		near = near[:eligible[len(eligible)-1]+1] // the stores after the last candidate are not considered
	}
	cands := make([]Candidate, len(eligible))
	for i, e := range eligible {
		cands[i].Near = near[e]
	}
	n := min(FirstRead, len(cands))
	if err := readInto(read, cands[:n]); err != nil {
		return nil, nil, 0, err
	}
	plans := RankPlans(items, cands[:n], maxStores, want)
	if n < len(cands) && !decided(plans, want, len(items), cands[n].DistanceKm) {
		if err := readInto(read, cands[n:]); err != nil {
			return nil, nil, 0, err
		}
		n = len(cands)
		plans = RankPlans(items, cands, maxStores, want)
	}
	if n < len(cands) {
		near = near[:eligible[n]] // every store from the first unread candidate on is farther than the plans
	}
	return plans, explain(items, near, cands[:n], plans, capability), n, nil
}

// decided reports whether plans (ranked over the nearer candidates) are the final ones:
// want complete one-store plans, all nearer than next, the nearest candidate not read.
func decided(plans []Plan, want, lines int, next float64) bool {
	if len(plans) < want {
		return false
	}
	for _, p := range plans {
		if p.rank.Covered != lines || p.rank.Stores != 1 || p.rank.Farthest >= next {
			return false
		}
	}
	return true
}

func readInto(read StockReader, cands []Candidate) error {
	if len(cands) == 0 {
		return nil
	}
	stores := make([]Near, len(cands))
	for i := range cands {
		stores[i] = cands[i].Near
	}
	av, err := read(stores)
	if err != nil {
		return err
	}
	for i := range cands {
		cands[i].Available = av[i]
	}
	return nil
}

// explain lists the stores of near nearer than the best plan's farthest store that are not
// in it, with why (every store, when there is no plan).
func explain(items []inventory.Item, near []Near, cands []Candidate, plans []Plan, capability string) []Skip {
	available := make(map[string][]int64, len(cands))
	for _, c := range cands {
		available[c.ID] = c.Available
	}
	skips := []Skip{}
	chosen := map[string]bool{}
	horizon := -1.0 // no plan: every store is explained
	if len(plans) > 0 {
		horizon = plans[0].rank.Farthest
		for _, p := range plans[0].Stores {
			chosen[p.Store] = true
		}
	}
	for _, n := range near {
		if chosen[n.ID] || (horizon >= 0 && n.DistanceKm >= horizon) {
			continue
		}
		sk := Skip{Store: n.ID, DistanceKm: n.DistanceKm}
		switch {
		case n.Status != Open:
			sk.Reason = ReasonClosed
		case !n.Can(capability):
			sk.Reason = ReasonNoCapability
		default:
			sk.Reason, sk.Short = ReasonShort, []inventory.Short{}
			for j, it := range items {
				if a := available[n.ID][j]; a < it.Qty {
					sk.Short = append(sk.Short, inventory.Short{SKU: it.SKU, Qty: it.Qty, Available: a})
				}
			}
		}
		skips = append(skips, sk)
	}
	return skips
}
