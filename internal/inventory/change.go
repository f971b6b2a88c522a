package inventory

import "time"

// Change is one applied stock event as the change feed tells it (design §4): what happened
// and the record's counters right after, so a re-indexer can overwrite rather than add.
type Change struct {
	ID       string    `json:"id"`
	Store    string    `json:"store"`
	SKU      string    `json:"sku"`
	Type     EventType `json:"type"`
	Delta    int64     `json:"delta"` // the change of on_hand (0 for reserve, release, set_safety)
	OnHand   int64     `json:"on_hand"`
	Reserved int64     `json:"reserved"`
	Safety   int64     `json:"safety"`
	Version  int64     `json:"version"`
	EventID  string    `json:"event_id"`
	At       time.Time `json:"at"`
}

// ApplyTo brings a snapshot record up to date with the change: a change older than or as
// old as the record (by version) is ignored, so snapshot + changes gives the live state
// whatever the overlap.
func (c Change) ApplyTo(s Stock) Stock {
	if c.Version <= s.Version {
		return s
	}
	s.Store, s.SKU = c.Store, c.SKU
	s.OnHand, s.Reserved, s.Safety, s.Version, s.UpdatedAt = c.OnHand, c.Reserved, c.Safety, c.Version, c.At
	return s.WithAvailable()
}
