package pos

import (
	"fmt"
	"iter"
	"math"
	"math/rand"
	"time"
)

// DayOptions shapes a generated POS day.
type DayOptions struct {
	Stores       int       // default 1,300
	SKUs         int       // default 20,000
	Transactions int       // default 100,000
	Date         time.Time // the day (local midnight of Zone); default today
	Zone         *time.Location
	Seed         int64
}

// hourWeight is the share of a day's transactions in each hour of a beauty and health
// shop: closed at night, a lunch peak at 12h and an after-work peak at 18h-19h.
var hourWeight = [24]float64{
	0.1, 0.05, 0.02, 0.02, 0.02, 0.05, 0.2, 0.6, 1.5, 2.5, 3.5, 4.5,
	9.0, 7.0, 4.5, 4.0, 4.5, 6.0, 9.5, 8.5, 5.5, 3.5, 1.5, 0.4,
}

// Day generates a realistic POS day, deterministic for a seed: transactions in time order,
// stores and SKUs drawn from long-tailed (Zipf) popularity, 1-4 lines each, mostly sales
// with some returns, voids and non-stock transactions (till open/close, cash movements).
func Day(o DayOptions) iter.Seq[Transaction] {
	if o.Stores <= 0 {
		o.Stores = 1300
	}
	if o.SKUs <= 0 {
		o.SKUs = 20000
	}
	if o.Transactions <= 0 {
		o.Transactions = 100000
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	if o.Date.IsZero() {
		o.Date = time.Now()
	}
	y, m, d := o.Date.In(o.Zone).Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, o.Zone)
	var cum [25]float64
	for h, w := range hourWeight {
		cum[h+1] = cum[h] + w
	}
	return func(yield func(Transaction) bool) {
		rng := rand.New(rand.NewSource(o.Seed))
		skuZipf := rand.NewZipf(rng, 1.07, 3, uint64(o.SKUs-1))
		storeZipf := rand.NewZipf(rng, 1.01, 5, uint64(o.Stores-1))
		for i := 0; i < o.Transactions; i++ {
			// The i-th of n transactions falls at the i/n quantile of the day's curve.
			q := (float64(i) + 0.5) / float64(o.Transactions) * cum[24]
			h := 0
			for cum[h+1] < q {
				h++
			}
			frac := (q - cum[h]) / (cum[h+1] - cum[h])
			at := midnight.Add(time.Duration((float64(h) + frac) * float64(time.Hour)))
			store := fmt.Sprintf("S%04d", storeZipf.Uint64())
			t := Transaction{TxnID: fmt.Sprintf("%s-%s-%07d", store, midnight.Format("20060102"), i), Store: store,
				Till: fmt.Sprintf("%02d", 1+rng.Intn(4)), At: at}
			switch r := rng.Float64(); {
			case r < 0.01:
				t.Type = []string{"open", "close", "cash_in", "no_sale"}[rng.Intn(4)]
			case r < 0.02:
				t.Type = "void"
			case r < 0.04:
				t.Type = "return"
			default:
				t.Type = "sale"
			}
			if t.Type == "sale" || t.Type == "return" || t.Type == "void" {
				n := 1 + int(math.Min(3, rng.ExpFloat64()))
				for j := 0; j < n; j++ {
					t.Lines = append(t.Lines, Line{SKU: fmt.Sprintf("88%011d", skuZipf.Uint64()), Qty: 1 + int64(rng.Intn(2)),
						Price: int64(1000 * (3 + rng.Intn(40)))})
				}
				if t.Type == "sale" && rng.Float64() < 0.05 {
					t.Lines = append(t.Lines, Line{Kind: "gift_card", Qty: 1, Price: 10000})
				}
			}
			if !yield(t) {
				return
			}
		}
	}
}
