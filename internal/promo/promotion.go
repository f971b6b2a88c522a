// Package promo is the gift-promotion domain (design §9): what a promotion is, which are
// valid, and what an order or a product page earns. It is pure: the rules live in
// PostgreSQL (package promo/db), today's candidates in a versioned Redis cache and a local
// cache keyed by version (package promo/redis); both hand this package a Catalog to
// evaluate in memory.
package promo

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Status of a promotion. A stopped promotion grants nothing, whatever its period.
type Status string

// The statuses.
const (
	Active  Status = "active"
	Stopped Status = "stopped"
)

// The sales channels a promotion can apply to.
const (
	ChannelOnline = "online"
	ChannelStore  = "store"
)

// Limits that keep one promotion, and so one cache version, a sane size.
const (
	MaxTargets   = 10000
	MaxGifts     = 20
	MaxStores    = 5000
	MaxNameBytes = 200
)

// Condition is what the target items of an order must reach together.
type Condition struct {
	MinQty    int64 `json:"min_qty"`
	MinAmount int64 `json:"min_amount"` // in the currency's smallest unit, like item prices
}

// Gift is one gift SKU and how many of it one fulfilment of the condition grants.
type Gift struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// Spec is everything an admin sets on a promotion: the body of a create, and the fields a
// patch may change.
type Spec struct {
	Name      string    `json:"name"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Priority  int       `json:"priority"`
	Channels  []string  `json:"channels"`
	Stores    []string  `json:"stores"` // empty: every store
	Targets   []string  `json:"targets"`
	Condition Condition `json:"condition"`
	Gifts     []Gift    `json:"gifts"`
	// MaxPerOrder caps the quantity of each gift one order is granted; 0: no cap.
	MaxPerOrder int64 `json:"max_per_order"`
}

// Promotion is a stored promotion.
type Promotion struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	Spec
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// CreatedBy and UpdatedBy name the API keys of the first and the last change ("" with
	// access control off); Changes lists them all.
	CreatedBy string `json:"created_by"`
	UpdatedBy string `json:"updated_by"`
}

// Change is one change of a promotion: when, by which API key, and what.
type Change struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Action string    `json:"action"` // create, update, stop
}

// ActiveAt reports whether p grants at t: not stopped and starts_at <= t < ends_at.
func (p *Promotion) ActiveAt(t time.Time) bool {
	return p.Status == Active && !t.Before(p.StartsAt) && t.Before(p.EndsAt)
}

// Normalize sorts and de-duplicates the set-like fields, so that equal specs compare and
// store equal, and truncates instants to the millisecond the stores keep. It never changes
// the slices it was given: s gets sorted copies.
func (s *Spec) Normalize() {
	s.Name = strings.TrimSpace(s.Name)
	s.StartsAt = s.StartsAt.UTC().Truncate(time.Millisecond)
	s.EndsAt = s.EndsAt.UTC().Truncate(time.Millisecond)
	for _, set := range []*[]string{&s.Channels, &s.Stores, &s.Targets} {
		// A copy: the caller's slice (a package-level list, a request) is never reordered.
		sorted := slices.Clone(*set)
		slices.Sort(sorted)
		*set = slices.Compact(sorted)
		if len(*set) == 0 {
			*set = []string{}
		}
	}
	if s.Gifts == nil {
		s.Gifts = []Gift{}
	} else {
		s.Gifts = slices.Clone(s.Gifts)
	}
}

// Validate checks s (normalized first) and returns an invalid-input error naming the first
// offending field: design §9's list (ends before it starts, min_qty < 1, gift qty < 1,
// unknown channel, no target, malformed SKU) and the limits above.
func (s *Spec) Validate() error {
	switch {
	case s.Name == "":
		return jaego.Invalidf("name", "name is required")
	case len(s.Name) > MaxNameBytes:
		return jaego.Invalidf("name", "name is longer than %d bytes", MaxNameBytes)
	case s.StartsAt.IsZero():
		return jaego.Invalidf("starts_at", "starts_at is required (RFC 3339)")
	case s.EndsAt.IsZero():
		return jaego.Invalidf("ends_at", "ends_at is required (RFC 3339)")
	case !s.EndsAt.After(s.StartsAt):
		return jaego.Invalidf("ends_at", "ends_at %s is not after starts_at %s",
			s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	case len(s.Channels) == 0:
		return jaego.Invalidf("channels", "channels is required: %q, %q or both", ChannelOnline, ChannelStore)
	case len(s.Targets) == 0:
		return jaego.Invalidf("targets", "a promotion needs at least one target SKU")
	case len(s.Targets) > MaxTargets:
		return jaego.Invalidf("targets", "at most %d target SKUs", MaxTargets)
	case len(s.Stores) > MaxStores:
		return jaego.Invalidf("stores", "at most %d stores", MaxStores)
	case len(s.Gifts) == 0:
		return jaego.Invalidf("gifts", "a promotion needs at least one gift")
	case len(s.Gifts) > MaxGifts:
		return jaego.Invalidf("gifts", "at most %d gifts", MaxGifts)
	case s.Condition.MinQty < 1:
		return jaego.Invalidf("condition.min_qty", "condition.min_qty must be at least 1, got %d", s.Condition.MinQty)
	case s.Condition.MinQty > MaxMinQty:
		return jaego.Invalidf("condition.min_qty", "condition.min_qty must be at most %d", MaxMinQty)
	case s.Condition.MinAmount < 0:
		return jaego.Invalidf("condition.min_amount", "condition.min_amount must not be negative")
	case s.MaxPerOrder < 0:
		return jaego.Invalidf("max_per_order", "max_per_order must not be negative (0: no cap)")
	}
	for _, c := range s.Channels {
		if c != ChannelOnline && c != ChannelStore {
			return jaego.Invalidf("channels", "unknown channel %q: want %q or %q", c, ChannelOnline, ChannelStore)
		}
	}
	for _, st := range s.Stores {
		if !jaego.ValidStore(st) {
			return jaego.Invalidf("stores", "malformed store id %q", st)
		}
	}
	for _, sku := range s.Targets {
		if !jaego.ValidSKU(sku) {
			return jaego.Invalidf("targets", "malformed target SKU %q", sku)
		}
	}
	seen := map[string]bool{}
	for i, g := range s.Gifts {
		if !jaego.ValidSKU(g.SKU) {
			return jaego.Invalidf(fmt.Sprintf("gifts[%d].sku", i), "malformed gift SKU %q", g.SKU)
		}
		if g.Qty < 1 || g.Qty > MaxGiftQty {
			return jaego.Invalidf(fmt.Sprintf("gifts[%d].qty", i), "gift %s: qty must be 1..%d, got %d", g.SKU, MaxGiftQty, g.Qty)
		}
		if seen[g.SKU] {
			return jaego.Invalidf(fmt.Sprintf("gifts[%d].sku", i), "gift %s is listed twice", g.SKU)
		}
		seen[g.SKU] = true
	}
	return nil
}

// DecodeSpec reads a create body strictly, normalizes and validates it.
func DecodeSpec(data []byte) (Spec, error) {
	var s Spec
	if err := jaego.StrictUnmarshal(data, &s); err != nil {
		return s, err
	}
	s.Normalize()
	return s, s.Validate()
}

// ApplyPatch decodes a patch body onto a copy of p's spec: fields present replace, absent
// ones stay. The result is normalized and validated; p is not changed.
func ApplyPatch(p *Promotion, data []byte) (Spec, error) {
	s := p.Spec
	s.Channels, s.Stores, s.Targets = slices.Clone(s.Channels), slices.Clone(s.Stores), slices.Clone(s.Targets)
	s.Gifts = slices.Clone(s.Gifts)
	if err := jaego.StrictUnmarshal(data, &s); err != nil {
		return s, err
	}
	s.Normalize()
	return s, s.Validate()
}
