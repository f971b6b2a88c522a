package webhook

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// The bodies of design §14: {"type","timestamp","data"}, the Standard Webhooks shape.

type envelope struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

type alertData struct {
	Store     string           `json:"store"`
	SKU       string           `json:"sku"`
	Available int64            `json:"available"`
	Threshold int64            `json:"threshold"`
	Change    inventory.Change `json:"change"`
	Cursor    string           `json:"cursor,omitempty"`
}

// messageID is the id of the seq-th message of subscription sub: the same for every attempt,
// and after a restart (the pending message is kept with it).
func messageID(sub string, seq int64) string {
	return "msg_" + strings.TrimPrefix(sub, "wh_") + "_" + strconv.FormatInt(seq, 10)
}

// changedMessage is a stock.changed message of changes, after which the position is after.
// Its body is appended by hand, as encoding/json would write the envelope (checked by
// TestChangedBody): it is most of a delivery's encoding.
func changedMessage(id string, changes []inventory.Change, after Position, now time.Time) Message {
	body := make([]byte, 0, 96+len(changes)*220)
	body = append(body, `{"type":"`+StockChanged+`","timestamp":`...)
	body = inventory.AppendJSONTime(body, now.UTC())
	body = append(body, `,"data":{"changes":`...)
	body = inventory.AppendChangesJSON(body, changes)
	if c := after.Cursor(); c != "" {
		body = append(body, `,"cursor":`...)
		body = inventory.AppendJSONString(body, c)
	}
	body = append(body, "}}"...)
	return Message{ID: id, Type: StockChanged, Body: body, After: after, First: changes[0].At, Changes: len(changes)}
}

// alertMessage is the message of one stock-level alert.
func alertMessage(id string, a Alert, after Position, now time.Time) Message {
	body, _ := json.Marshal( // strings, numbers and a change's time (a stream id's milliseconds): nothing fails
		envelope{Type: a.Type, Timestamp: now.UTC(), Data: alertData{Store: a.Change.Store, SKU: a.Change.SKU,
			Available: a.Available, Threshold: a.Threshold, Change: a.Change, Cursor: after.Cursor()}})
	return Message{ID: id, Type: a.Type, Body: body, After: after, First: a.Change.At, Changes: 1}
}

// Cursor is the feed cursor of a position, "" while it is in the ledger (a receiver can
// replay from a cursor, or from a change's time).
func (p Position) Cursor() string {
	if p.ledger() {
		return ""
	}
	return string(p)
}
