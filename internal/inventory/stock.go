// Package inventory is the store-inventory domain: the stock record of one store × SKU, the
// stock events that change it, their exact rules, and the errors a caller can act on.
// It imports no driver; the Redis store, the HTTP API and the Kafka pipeline live in
// subpackages named after what they depend on.
package inventory

import (
	"regexp"
	"time"
)

// Stock is the live stock of one SKU in one store (design §2).
type Stock struct {
	Store     string    `json:"store"`
	SKU       string    `json:"sku"`
	OnHand    int64     `json:"on_hand"`
	Reserved  int64     `json:"reserved"`
	Safety    int64     `json:"safety"`
	Available int64     `json:"available"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AvailableOf is what the online shop may still promise: on_hand minus what is reserved for
// open orders and the safety stock the store keeps back, never below zero.
func AvailableOf(onHand, reserved, safety int64) int64 {
	return max(0, onHand-reserved-safety)
}

// WithAvailable returns s with Available recomputed from its counters.
func (s Stock) WithAvailable() Stock {
	s.Available = AvailableOf(s.OnHand, s.Reserved, s.Safety)
	return s
}

var (
	storeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	skuRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// ValidStore reports whether id is a well-formed store identifier.
func ValidStore(id string) bool { return storeRE.MatchString(id) }

// ValidSKU reports whether id is a well-formed SKU identifier.
func ValidSKU(id string) bool { return skuRE.MatchString(id) }

// ValidEventID reports whether id is 1–128 printable ASCII characters.
func ValidEventID(id string) bool {
	if len(id) < 1 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// CheckStore returns an invalid-input error when id is not a well-formed store identifier.
func CheckStore(id string) error {
	if !ValidStore(id) {
		return Invalidf("store", "store %q must match %s", id, storeRE)
	}
	return nil
}

// CheckSKU returns an invalid-input error when id is not a well-formed SKU.
func CheckSKU(id string) error {
	if !ValidSKU(id) {
		return Invalidf("sku", "sku %q must match %s", id, skuRE)
	}
	return nil
}
