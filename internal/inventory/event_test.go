package inventory_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	"github.com/jaego/jaego/internal/jaego"
)

func TestIdentifierBounds(t *testing.T) {
	cases := []struct {
		ok   bool
		got  bool
		name string
	}{
		{true, jaego.ValidStore(strings.Repeat("s", 32)), "32-char store"},
		{false, jaego.ValidStore(strings.Repeat("s", 33)), "33-char store"},
		{true, jaego.ValidStore("Gangnam_01-B"), "store with _ and -"},
		{false, jaego.ValidStore("S.1"), "store with dot"},
		{true, jaego.ValidSKU(strings.Repeat("9", 64)), "64-char sku"},
		{true, jaego.ValidSKU("ABC.def-1_2"), "sku with . - _"},
		{false, jaego.ValidSKU(strings.Repeat("9", 65)), "65-char sku"},
		{true, jaego.ValidEventID(strings.Repeat("e", 128)), "128-char event id"},
		{true, jaego.ValidEventID("pos S001 #12/3"), "printable punctuation and space"},
		{false, jaego.ValidEventID(strings.Repeat("e", 129)), "129-char event id"},
		{false, jaego.ValidEventID(""), "empty event id"},
	}
	for _, c := range cases {
		if c.ok != c.got {
			t.Errorf("%s: valid=%v, want %v", c.name, c.got, c.ok)
		}
	}
}

func TestValidateEveryInvalidEvent(t *testing.T) {
	for name, e := range inventorytest.InvalidEvents() {
		if err := e.Validate(); !errors.Is(err, jaego.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, typ := range inventory.EventTypes {
		e := inventory.Event{EventID: "ok", Type: typ, Store: "S", SKU: "K", Qty: 1}
		if err := e.Validate(); err != nil {
			t.Errorf("%s qty 1: %v", typ, err)
		}
	}
	zero := int64(0)
	if err := (inventory.Event{EventID: "ok", Type: inventory.Set, Store: "S", SKU: "K", ExpectedVersion: &zero}).Validate(); err != nil {
		t.Errorf("set 0 with expected_version 0: %v", err)
	}
}

func TestAvailableNeverNegative(t *testing.T) {
	for _, c := range [][4]int64{{10, 2, 1, 7}, {3, 2, 1, 0}, {3, 5, 0, 0}, {-4, 0, 0, 0}, {5, 0, 9, 0}} {
		if got := inventory.AvailableOf(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("AvailableOf(%d,%d,%d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
}

// AvailableAt answers the available stock of the SKUs that have a record, from one read.
func TestAvailableAt(t *testing.T) {
	s := inmem.New(inmem.Options{})
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "G1", 5), inventorytest.Ev(inventory.Receipt, "S1", "G2", 3),
		inventorytest.Ev(inventory.Reserve, "S1", "G2", 1), inventorytest.Ev(inventory.Receipt, "S2", "G3", 9))
	got, err := inventory.AvailableAt(context.Background(), s, "S1", []string{"G1", "G2", "G3"})
	if err != nil || len(got) != 2 || got["G1"] != 5 || got["G2"] != 2 {
		t.Fatalf("available at S1: %v %v, want G1 5, G2 2 and no G3", got, err)
	}
}
