// Package pos reads what the tills of the stores send: POS transactions as NDJSON, one
// transaction per line, and keeps only what changes stock, as inventory events.
// docs/pos-format.md documents the format for the teams that run the store relays.
package pos

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Transaction is one till transaction.
type Transaction struct {
	TxnID string    `json:"txn_id"`
	Store string    `json:"store"`
	Till  string    `json:"till,omitempty"`
	At    time.Time `json:"at"`
	Type  string    `json:"type"`
	Lines []Line    `json:"lines,omitempty"`
}

// Line is one line of a transaction.
type Line struct {
	SKU   string `json:"sku,omitempty"`
	Qty   int64  `json:"qty"`
	Price int64  `json:"price,omitempty"` // minor units; not used for stock
	Kind  string `json:"kind,omitempty"`  // "item" (default), or a non-stock line: "service", "gift_card", "fee", "discount"
}

// The transaction types that change stock, and those that do not (kept out, but counted).
var (
	stockTypes    = map[string]bool{"sale": true, "return": true, "void": true}
	nonStockTypes = map[string]bool{"open": true, "close": true, "login": true, "logout": true, "no_sale": true,
		"cash_in": true, "cash_out": true, "payment": true, "x_report": true, "z_report": true}
	nonStockLines = map[string]bool{"service": true, "gift_card": true, "fee": true, "discount": true}
)

// ErrMalformed is wrapped by every decode error.
var ErrMalformed = errors.New("malformed POS transaction")

// Decode reads one NDJSON line strictly: unknown fields, a name given twice, trailing data
// and bad types are errors, never skipped (jaego.StrictUnmarshal, as every HTTP body).
func Decode(line []byte) (Transaction, error) {
	var t Transaction
	if err := jaego.StrictUnmarshal(line, &t); err != nil {
		return t, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := t.check(); err != nil {
		return t, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return t, nil
}

func (t Transaction) check() error {
	switch {
	case len(t.TxnID) > 100 || !jaego.ValidEventID(t.TxnID):
		return errors.New("txn_id must be 1-100 printable ASCII characters")
	case !jaego.ValidStore(t.Store):
		return fmt.Errorf("store %q is not a valid store id", t.Store)
	case t.At.IsZero():
		return errors.New("at is required")
	case !stockTypes[t.Type] && !nonStockTypes[t.Type]:
		return fmt.Errorf("unknown transaction type %q", t.Type)
	case stockTypes[t.Type] && len(t.Lines) == 0:
		return fmt.Errorf("a %s transaction needs lines", t.Type)
	}
	for i, l := range t.Lines {
		if nonStockLines[l.Kind] {
			continue
		}
		if l.Kind != "" && l.Kind != "item" {
			return fmt.Errorf("line %d: unknown kind %q", i+1, l.Kind)
		}
		if !jaego.ValidSKU(l.SKU) {
			return fmt.Errorf("line %d: sku %q is not a valid sku", i+1, l.SKU)
		}
		if l.Qty == 0 || l.Qty > inventory.MaxQty || l.Qty < -inventory.MaxQty {
			return fmt.Errorf("line %d: qty must be a non-zero integer within ±%d", i+1, inventory.MaxQty)
		}
	}
	return nil
}

// Events maps a transaction to the stock events it causes, one per item line:
//   - sale: qty > 0 is a sale, qty < 0 (an exchange within the sale) a return;
//   - return: a customer return of |qty|;
//   - void: the cancellation of an earlier sale, giving |qty| back (sale_cancel).
//
// Non-stock transactions and lines give none. Event ids are pos-<txn_id>-<line number>, so a
// transaction relayed twice is applied once.
func (t Transaction) Events() []inventory.Event {
	if !stockTypes[t.Type] {
		return nil
	}
	var out []inventory.Event
	for i, l := range t.Lines {
		if nonStockLines[l.Kind] {
			continue
		}
		typ, qty := inventory.Sale, l.Qty
		switch {
		case t.Type == "return":
			typ, qty = inventory.Return, abs(qty)
		case t.Type == "void":
			typ, qty = inventory.SaleCancel, abs(qty)
		case qty < 0:
			typ, qty = inventory.Return, -qty
		}
		out = append(out, inventory.Event{
			EventID:    "pos-" + t.TxnID + "-" + strconv.Itoa(i+1),
			Type:       typ,
			Store:      t.Store,
			SKU:        l.SKU,
			Qty:        qty,
			OccurredAt: t.At,
			Source:     "pos",
		})
	}
	return out
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
