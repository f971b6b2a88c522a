// Package webhook is jaego's outbound events (design §14): subscriptions that deliver the
// change feed and stock-level alerts to HTTP endpoints, signed (Standard Webhooks), in feed
// order, from a position kept per subscription. It holds the types, the rules and the use
// case (Dispatcher); the subscriptions and their positions live in webhook/db, the admin
// API in webhook/http, the metrics in webhook/prom.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// The event types a subscription can ask for.
const (
	StockChanged = "stock.changed" // the changes of the feed, in batches
	StockLow     = "stock.low"     // available fell to or below low_stock from above
	StockOut     = "stock.out"     // available went from > 0 to 0
	StockBackIn  = "stock.back_in" // available went from 0 to > 0
)

// EventTypes lists every event type, in the order of design §14.
var EventTypes = []string{StockChanged, StockLow, StockOut, StockBackIn}

// Status is where a subscription stands.
type Status string

// The statuses of a subscription.
const (
	Active  Status = "active"  // delivering
	Paused  Status = "paused"  // an operator paused it: its position waits
	Failing Status = "failing" // a message failed for the give-up time: it waits for an operator
)

// Limits of a subscription.
const (
	MaxBatch    = 1000 // changes in one stock.changed message at most
	MaxFilter   = 1000 // stores or SKUs in a filter at most
	MaxURL      = 2048
	DefaultLow  = 5
	DefaultSize = 100
)

// Subscription is one endpoint and what it is sent.
type Subscription struct {
	ID       string   `json:"id"`
	URL      string   `json:"url"`
	Events   []string `json:"events"`
	Stores   []string `json:"stores"` // empty: every store
	SKUs     []string `json:"skus"`   // empty: every SKU
	LowStock int64    `json:"low_stock"`
	Batch    int      `json:"batch"`
	Status   Status   `json:"status"`
	// Generation rises with every change an operator makes (filters, status, replay, a new
	// secret): a deliverer that sees another generation starts over with the new one.
	Generation int64     `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Wants reports whether the subscription asked for event type t.
func (s Subscription) Wants(t string) bool { return slices.Contains(s.Events, t) }

// Levels reports whether it asked for any stock-level alert.
func (s Subscription) Levels() bool {
	return s.Wants(StockLow) || s.Wants(StockOut) || s.Wants(StockBackIn)
}

// Matches reports whether c is inside the subscription's store and SKU filters.
func (s Subscription) Matches(c inventory.Change) bool {
	return (len(s.Stores) == 0 || slices.Contains(s.Stores, c.Store)) &&
		(len(s.SKUs) == 0 || slices.Contains(s.SKUs, c.SKU))
}

// Normalize fills defaults, sorts the filters and checks every field; the URL's target is
// checked by a Targets.
func (s *Subscription) Normalize() error {
	if s.URL == "" {
		return jaego.Invalidf("url", "url is required")
	}
	if len(s.URL) > MaxURL {
		return jaego.Invalidf("url", "url must be at most %d characters", MaxURL)
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &jaego.Error{Code: jaego.CodeTargetRefused, Field: "url", Detail: "url must be an absolute http:// or https:// URL"}
	}
	if u.User != nil {
		return jaego.Invalidf("url", "url must not carry credentials: the signature authenticates jaego")
	}
	if len(s.Events) == 0 {
		s.Events = []string{StockChanged}
	}
	for _, e := range s.Events {
		if !slices.Contains(EventTypes, e) {
			return jaego.Invalidf("events", "unknown event type %q (%s)", e, strings.Join(EventTypes, ", "))
		}
	}
	s.Events = sortedSet(s.Events)
	if len(s.Stores) > MaxFilter || len(s.SKUs) > MaxFilter {
		return jaego.Invalidf("stores", "stores and skus hold at most %d ids each", MaxFilter)
	}
	for _, st := range s.Stores {
		if err := jaego.CheckStore(st); err != nil {
			return err
		}
	}
	for _, sku := range s.SKUs {
		if err := jaego.CheckSKU(sku); err != nil {
			return err
		}
	}
	s.Stores, s.SKUs = sortedSet(s.Stores), sortedSet(s.SKUs)
	if s.LowStock < 0 || s.LowStock > inventory.MaxQty {
		return jaego.Invalidf("low_stock", "low_stock must be within 0..%d", inventory.MaxQty)
	}
	if s.Batch == 0 {
		s.Batch = DefaultSize
	}
	if s.Batch < 1 || s.Batch > MaxBatch {
		return jaego.Invalidf("batch", "batch must be within 1..%d", MaxBatch)
	}
	switch s.Status {
	case "":
		s.Status = Active
	case Active, Paused:
	case Failing:
		return jaego.Invalidf("status", "a subscription turns failing by itself; set it active or paused")
	default:
		return jaego.Invalidf("status", "status must be active or paused, got %q", s.Status)
	}
	return nil
}

func sortedSet(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Start is where a subscription begins (or a replay goes back to): now, a feed cursor, or a
// time. It travels as the position text of design §14's "from".
type Start struct {
	Now    bool      // from the end of the feed: every change applied after it
	Cursor string    // a change-feed cursor (next_cursor of a read)
	Time   time.Time // a time: every change applied at or after it
}

// ParseStart reads a "from": "now" (or ""), an RFC 3339 time, or a feed cursor.
func ParseStart(from string, now time.Time) (Start, error) {
	switch {
	case from == "" || from == "now":
		return Start{Now: true, Time: now}, nil
	case looksLikeTime(from):
		t, err := time.Parse(time.RFC3339Nano, from)
		if err != nil {
			return Start{}, jaego.Invalidf("from", "from must be \"now\", an RFC 3339 time or a cursor: %v", err)
		}
		if t.After(now) {
			return Start{}, jaego.Invalidf("from", "from is in the future")
		}
		return Start{Time: t}, nil
	default:
		return Start{Cursor: from}, nil
	}
}

// looksLikeTime: s starts as an RFC 3339 time does, four digits and a dash. A cursor never
// does (base64url has '-' too, but a cursor's first character is a letter).
func looksLikeTime(s string) bool {
	if len(s) < 5 || s[4] != '-' {
		return false
	}
	for _, c := range s[:4] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Position is a subscription's place in the feed, as the store keeps it: a feed cursor, or
// (before the first read) a time, or a place in the durable copy's ledger for a replay that
// reaches back beyond the Redis retention. Only this package reads it.
type Position string

// At is the position that starts at t.
func At(t time.Time) Position { return Position(fmt.Sprintf("t:%d", t.UnixMilli())) }

// FromCursor is the position of a feed cursor.
func FromCursor(c string) Position { return Position(c) }

// Message is one delivery: its id (the same for every attempt), its type and body, and the
// position after the changes it carries.
type Message struct {
	ID    string
	Seq   int64 // its place among the subscription's messages (the n of its id)
	Type  string
	Body  json.RawMessage // kept as JSON inside the pending list, not base64
	After Position
	// First is when the oldest change in it was applied (the subscription's lag).
	First time.Time
	// Changes is how many changes it carries.
	Changes int
	// Attempts made so far, and when the first one was (a message fails for good after
	// the give-up time since then).
	Attempts     int
	FirstAttempt time.Time
}

// Attempt is one try of a message, as the delivery log keeps it (7 days).
type Attempt struct {
	Message string        `json:"message_id"`
	Type    string        `json:"type"`
	At      time.Time     `json:"at"`
	Attempt int           `json:"attempt"`
	Status  int           `json:"http_status,omitempty"` // 0 when no answer came
	Latency time.Duration `json:"-"`
	// LatencyMS is Latency in milliseconds, as the delivery log shows it.
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
	Changes   int     `json:"changes"`
}

// Delivered reports whether the attempt succeeded (a 2xx).
func (a Attempt) Delivered() bool { return a.Status >= 200 && a.Status < 300 }

// Generation is a subscription's generation and status, as the dispatcher polls them.
type Generation struct {
	Generation int64
	Status     Status
}

// Grant is what a deliverer's writes carry: the fencing token of its lock and the
// generation it claimed. A write under a lower token (a newer deliverer claimed the
// subscription) or another generation (an operator changed it since) changes nothing.
type Grant struct {
	Token      int64
	Generation int64
}

// State is what a deliverer resumes from.
type State struct {
	Grant    Grant
	Sub      Subscription
	Position Position
	// Pending are the messages formed and not yet delivered, in order: they go before
	// anything else, with the same ids.
	Pending []Message
	Seq     int64     // messages formed so far (ids are msg_<subscription>_<seq>)
	AsOf    time.Time // when the last change the position passed was applied
}

// Info is a subscription as operators see it: its settings and how its delivery goes.
type Info struct {
	Subscription
	Position    string     `json:"position"`
	LagSeconds  float64    `json:"lag_seconds"`
	LastSuccess *time.Time `json:"last_success"`
	LastError   string     `json:"last_error,omitempty"`
	Pending     int        `json:"pending_messages"`
	Secret      string     `json:"secret,omitempty"` // only in the answer that makes it
}

// DeliveryPage is one page of the delivery log, newest first.
type DeliveryPage struct {
	Deliveries []Attempt `json:"deliveries"`
	Next       string    `json:"next_cursor,omitempty"`
}

// Progress is one write of a deliverer: the messages delivered since its last write, then
// the messages formed since. A deliverer that follows a busy feed writes once for many
// messages; one that stops between a delivery and its write sends that message again, with
// its id, which the receiver deduplicates (at least once, design §14).
type Progress struct {
	// Delivered are the successful attempts of the first pending messages, in order: they
	// are logged, the pending messages up to seq Through are dropped, and the position
	// moves to After, whose last change was applied at At.
	Delivered []Attempt
	Through   int64
	After     Position
	At        time.Time
	// Pend are the messages formed since, kept pending after the others, in order; Seq is
	// the number of messages formed so far.
	Pend []Message
	Seq  int64
}

// Store keeps subscriptions, their secrets, positions and delivery logs (webhook/db).
//
// Contract: the delivery-state writes (Progress, Attempted, Advance, GiveUp) carry a
// Grant and change nothing when a higher token was claimed (ErrFenced: a deliverer whose
// lease ran out cannot move a position its successor owns) or the generation moved on
// (ErrStale: a replay or a pause is not overwritten by the deliverer it stops).
type Store interface {
	Create(ctx context.Context, s Subscription, secret Sealed, start Position) error
	List(ctx context.Context) ([]Info, error)
	Get(ctx context.Context, id string) (Info, error)
	// Update changes a subscription with fn, in a transaction, and raises its generation.
	Update(ctx context.Context, id string, fn func(*Subscription) error) (Info, error)
	Delete(ctx context.Context, id string) error
	// Secrets are the subscription's sealed signing secrets that are still valid at now,
	// newest first.
	Secrets(ctx context.Context, id string, now time.Time) ([]Sealed, error)
	// Rotate adds a new secret; the others stay valid until oldUntil.
	Rotate(ctx context.Context, id string, secret Sealed, oldUntil time.Time) error
	// Replay moves the position to start, drops the pending message and raises the
	// generation.
	Replay(ctx context.Context, id string, start Position) error

	// Generations is every subscription's generation and status, by id: what the
	// dispatcher polls.
	Generations(ctx context.Context) (map[string]Generation, error)
	// Claim raises the subscription's token to token and answers where to resume, with the
	// grant every later write carries.
	Claim(ctx context.Context, id string, token int64) (State, error)
	// Progress writes p in one transaction.
	Progress(ctx context.Context, id string, g Grant, p Progress) error
	// Attempted logs a failed attempt of the first pending message and counts it there.
	Attempted(ctx context.Context, id string, g Grant, a Attempt) error
	// Advance moves the position past changes no message carries (filtered out).
	Advance(ctx context.Context, id string, g Grant, after Position, at time.Time) error
	// GiveUp turns the subscription failing, keeping its position and pending messages.
	GiveUp(ctx context.Context, id string, g Grant, reason string) error
	Deliveries(ctx context.Context, id string, status string, limit int, cursor string) (DeliveryPage, error)
	// Prune drops delivery-log rows older than before; it says how many went.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// Errors of webhooks.
var (
	ErrNotFound = &jaego.Error{Code: jaego.CodeNotFound, Detail: "no such webhook subscription"}
	// ErrFenced: a newer deliverer holds the subscription; this one must stop.
	ErrFenced = errors.New("webhook: a newer deliverer holds the subscription")
	// ErrStale: the subscription changed since the deliverer claimed it.
	ErrStale = errors.New("webhook: the subscription changed; its deliverer starts over")
)
