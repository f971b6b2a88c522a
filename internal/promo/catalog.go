package promo

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Limits of an order sheet, chosen so that every sum below fits in an int64.
const (
	MaxItems   = 1000
	MaxItemQty = 1_000_000
	MaxPrice   = 1_000_000_000
	MaxGiftQty = 1000
	MaxMinQty  = 1_000_000
)

// maxAmount is the largest target amount an order can sum to; as a typed constant it does
// not compile if the limits above ever let it overflow an int64.
const maxAmount int64 = MaxItems * MaxItemQty * MaxPrice

// Catalog is one cache version's candidate promotions, indexed by target SKU for evaluation
// in memory. It is immutable once built and safe for concurrent use.
type Catalog struct {
	Version int64
	Day     string // the day (YYYY-MM-DD, in the rebuild's time zone) it was built for

	promos []Promotion        // in answer order: priority descending, then id
	bySKU  map[string][]int32 // target SKU → indexes into promos, ascending
}

// NewCatalog indexes ps (which it sorts in answer order).
func NewCatalog(version int64, day string, ps []Promotion) *Catalog {
	slices.SortFunc(ps, func(a, b Promotion) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.ID, b.ID))
	})
	c := &Catalog{Version: version, Day: day, promos: ps, bySKU: make(map[string][]int32)}
	for i := range ps {
		for _, sku := range ps[i].Targets {
			c.bySKU[sku] = append(c.bySKU[sku], int32(i))
		}
	}
	return c
}

// Len is the number of promotions in the catalog.
func (c *Catalog) Len() int { return len(c.promos) }

// Promotions returns the catalog's promotions in answer order; callers must not change them.
func (c *Catalog) Promotions() []Promotion { return c.promos }

// Where is the context of a question: the sales channel, the store (empty: an order not
// tied to a store, which only promotions for every store apply to) and the instant.
type Where struct {
	Channel string
	Store   string
	At      time.Time
}

// Check validates the channel and store of w.
func (w Where) Check() error {
	if w.Channel != ChannelOnline && w.Channel != ChannelStore {
		return jaego.Invalidf("channel", "unknown channel %q: want %q or %q", w.Channel, ChannelOnline, ChannelStore)
	}
	if w.Store != "" && !jaego.ValidStore(w.Store) {
		return jaego.Invalidf("store", "malformed store id %q", w.Store)
	}
	return nil
}

func (p *Promotion) appliesTo(w Where) bool {
	if !p.ActiveAt(w.At) {
		return false
	}
	if _, ok := slices.BinarySearch(p.Channels, w.Channel); !ok {
		return false
	}
	if len(p.Stores) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(p.Stores, w.Store)
	return ok && w.Store != ""
}

// Offer is what a product page shows of one promotion.
type Offer struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Priority    int       `json:"priority"`
	Condition   Condition `json:"condition"`
	Gifts       []Gift    `json:"gifts"`
	MaxPerOrder int64     `json:"max_per_order"`
	EndsAt      time.Time `json:"ends_at"`
}

// ProductGifts returns the promotions that have sku among their targets and apply in w, in
// answer order.
func (c *Catalog) ProductGifts(sku string, w Where) []Offer {
	out := []Offer{}
	for _, i := range c.bySKU[sku] {
		p := &c.promos[i]
		if p.appliesTo(w) {
			out = append(out, Offer{ID: p.ID, Name: p.Name, Priority: p.Priority, Condition: p.Condition,
				Gifts: p.Gifts, MaxPerOrder: p.MaxPerOrder, EndsAt: p.EndsAt})
		}
	}
	return out
}

// Item is one line of an order sheet.
type Item struct {
	SKU   string `json:"sku"`
	Qty   int64  `json:"qty"`
	Price int64  `json:"price"` // unit price in the currency's smallest unit
}

// Order is an order sheet to evaluate.
type Order struct {
	Channel string `json:"channel"`
	Store   string `json:"store"`
	Items   []Item `json:"items"`
	// GiftStock, with a Store: "show" (the default) says each gift's stock there, "cap"
	// also caps each grant by it (design §12).
	GiftStock string `json:"gift_stock"`
}

// The ways an order's gifts meet the store's stock.
const (
	GiftStockShow = "show"
	GiftStockCap  = "cap"
)

// StockAt says the available stock of gift SKUs at a store.
type StockAt func(ctx context.Context, store string, skus []string) (map[string]int64, error)

// WithStock adds each grant's stock at the order's store and, with gift_stock cap, caps
// the grant by it: a gift the store lacks is not granted.
func WithStock(ctx context.Context, order Order, grants []Grant, stock StockAt) ([]Grant, error) {
	if order.Store == "" || stock == nil || len(grants) == 0 {
		return grants, nil
	}
	skus := make([]string, len(grants))
	for i, g := range grants {
		skus[i] = g.SKU
	}
	available, err := stock(ctx, order.Store, skus)
	if err != nil {
		return nil, err
	}
	out := make([]Grant, 0, len(grants))
	left := map[string]int64{} // two promotions granting one gift share its stock
	for _, g := range grants {
		if _, ok := left[g.SKU]; !ok {
			left[g.SKU] = available[g.SKU]
		}
		a := left[g.SKU]
		if order.GiftStock == GiftStockCap {
			g.Qty = min(g.Qty, a)
			if g.Qty == 0 {
				continue
			}
			left[g.SKU] -= g.Qty
		}
		in := a >= g.Qty
		g.Available, g.InStock = &a, &in
		out = append(out, g)
	}
	return out, nil
}

// Validate checks the order's channel, store and items.
func (o *Order) Validate() error {
	if err := (Where{Channel: o.Channel, Store: o.Store}).Check(); err != nil {
		return err
	}
	if len(o.Items) == 0 {
		return jaego.Invalidf("items", "an order needs at least one item")
	}
	switch {
	case o.GiftStock != "" && o.GiftStock != GiftStockShow && o.GiftStock != GiftStockCap:
		return jaego.Invalidf("gift_stock", "gift_stock must be %s or %s, got %q", GiftStockShow, GiftStockCap, o.GiftStock)
	case o.GiftStock != "" && o.Store == "":
		return jaego.Invalidf("gift_stock", "gift_stock needs the order's store")
	}
	if len(o.Items) > MaxItems {
		return jaego.Invalidf("items", "at most %d items", MaxItems)
	}
	for i, it := range o.Items {
		switch {
		case !jaego.ValidSKU(it.SKU):
			return jaego.Invalidf("items", "items[%d]: malformed SKU %q", i, it.SKU)
		case it.Qty < 1 || it.Qty > MaxItemQty:
			return jaego.Invalidf("items", "items[%d]: qty must be 1..%d, got %d", i, MaxItemQty, it.Qty)
		case it.Price < 0 || it.Price > MaxPrice:
			return jaego.Invalidf("items", "items[%d]: price must be 0..%d, got %d", i, MaxPrice, it.Price)
		}
	}
	return nil
}

// Grant is a quantity of one gift SKU that an order earns from one promotion.
type Grant struct {
	PromotionID string `json:"promotion_id"`
	SKU         string `json:"sku"`
	Qty         int64  `json:"qty"`
	// Available and InStock: the gift SKU's stock at the order's store, when it names one.
	Available *int64 `json:"available,omitempty"`
	InStock   *bool  `json:"in_stock,omitempty"`
}

// Evaluate returns what order earns at instant at (design §9): for every promotion that
// applies, the target quantity and amount are summed over the items whose SKU is a target;
// when both reach the condition, each gift is granted floor(qty / min_qty) × gift.qty,
// capped at max_per_order when it is set. Grants come in answer order.
func (c *Catalog) Evaluate(order Order, at time.Time) []Grant {
	w := Where{Channel: order.Channel, Store: order.Store, At: at}
	var candidates []int32
	for _, it := range order.Items {
		candidates = append(candidates, c.bySKU[it.SKU]...)
	}
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	out := []Grant{}
	for _, i := range candidates {
		p := &c.promos[i]
		if !p.appliesTo(w) {
			continue
		}
		var qty, amount int64
		for _, it := range order.Items {
			if _, ok := slices.BinarySearch(p.Targets, it.SKU); ok {
				qty += it.Qty
				amount += it.Qty * it.Price
			}
		}
		if qty < p.Condition.MinQty || amount < p.Condition.MinAmount {
			continue
		}
		times := qty / p.Condition.MinQty
		for _, g := range p.Gifts {
			n := times * g.Qty
			if p.MaxPerOrder > 0 && n > p.MaxPerOrder {
				n = p.MaxPerOrder
			}
			out = append(out, Grant{PromotionID: p.ID, SKU: g.SKU, Qty: n})
		}
	}
	return out
}
