package webhook

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Admin is the use case behind the admin API: it makes, changes, rotates and replays
// subscriptions, and tells the local dispatcher at once (other instances notice within
// their poll).
type Admin struct {
	store     Store
	feed      Feed
	ledger    bool
	retention time.Duration
	targets   Targets
	sealer    *Sealer
	sender    *Sender
	kick      func()
	now       func() time.Time
}

// RotationOverlap is how long the old secret keeps signing after a rotation.
const RotationOverlap = 24 * time.Hour

// NewAdmin returns the admin use case; kick (may be nil) wakes the local dispatcher.
func NewAdmin(o Options, targets Targets, kick func()) *Admin {
	if kick == nil {
		kick = func() {}
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	retention := o.Retention
	if retention <= 0 {
		retention = 48 * time.Hour
	}
	return &Admin{store: o.Store, feed: o.Feed, ledger: o.Ledger != nil, retention: retention, targets: targets,
		sealer: o.Sealer, sender: o.Sender, kick: kick, now: now}
}

// Create makes a subscription from s (normalized, its URL checked) starting at from, and
// answers it with its secret, the only time the secret is shown.
func (a *Admin) Create(ctx context.Context, s Subscription, from string) (Info, error) {
	if err := s.Normalize(); err != nil {
		return Info{}, err
	}
	if err := a.targets.Check(ctx, s.URL); err != nil {
		return Info{}, err
	}
	now := a.now()
	start, err := ParseStart(from, now)
	if err != nil {
		return Info{}, err
	}
	pos, err := StartPosition(ctx, a.feed, a.ledger, a.retention, start, now)
	if err != nil {
		return Info{}, err
	}
	s.ID = "wh_" + strings.ToLower(rand.Text())
	s.CreatedAt, s.UpdatedAt, s.Generation = now.UTC().Truncate(time.Millisecond), now.UTC().Truncate(time.Millisecond), 1
	secret := NewSecret()
	if err := a.store.Create(ctx, s, a.sealer.Seal(s.ID, secret), pos); err != nil {
		return Info{}, err
	}
	a.kick()
	info, err := a.store.Get(ctx, s.ID)
	info.Secret = secret
	return info, err
}

// Patch is a change of a subscription: the fields given.
type Patch struct {
	URL      *string   `json:"url"`
	Events   *[]string `json:"events"`
	Stores   *[]string `json:"stores"`
	SKUs     *[]string `json:"skus"`
	LowStock *int64    `json:"low_stock"`
	Batch    *int      `json:"batch"`
	Status   *Status   `json:"status"`
}

// Update applies p to subscription id. Setting a failing subscription active resumes it
// from its kept position (its pending message first).
func (a *Admin) Update(ctx context.Context, id string, p Patch) (Info, error) {
	if p.URL != nil {
		if err := a.targets.Check(ctx, *p.URL); err != nil {
			return Info{}, err
		}
	}
	info, err := a.store.Update(ctx, id, func(s *Subscription) error {
		set(&s.URL, p.URL)
		set(&s.Events, p.Events)
		set(&s.Stores, p.Stores)
		set(&s.SKUs, p.SKUs)
		set(&s.LowStock, p.LowStock)
		set(&s.Batch, p.Batch)
		if s.Status == Failing && p.Status == nil {
			s.Status = Active // Normalize refuses failing as a target
			defer func() { s.Status = Failing }()
		}
		set(&s.Status, p.Status)
		return s.Normalize()
	})
	if err == nil {
		a.kick()
	}
	return info, err
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Rotate gives subscription id a new secret; the old ones keep signing for RotationOverlap.
func (a *Admin) Rotate(ctx context.Context, id string) (string, time.Time, error) {
	secret := NewSecret()
	until := a.now().Add(RotationOverlap)
	if err := a.store.Rotate(ctx, id, a.sealer.Seal(id, secret), until); err != nil {
		return "", time.Time{}, err
	}
	a.kick()
	return secret, until.UTC(), nil
}

// Replay delivers again from from (a cursor or an RFC 3339 time; from the ledger when older
// than the Redis retention).
func (a *Admin) Replay(ctx context.Context, id, from string) error {
	if from == "" || from == "now" {
		return jaego.Invalidf("from", "from is required: a cursor or an RFC 3339 time")
	}
	if _, err := a.store.Get(ctx, id); err != nil {
		return err
	}
	now := a.now()
	start, err := ParseStart(from, now)
	if err != nil {
		return err
	}
	pos, err := StartPosition(ctx, a.feed, a.ledger, a.retention, start, now)
	if err != nil {
		return err
	}
	if err := a.store.Replay(ctx, id, pos); err != nil {
		return err
	}
	a.kick()
	return nil
}

// Test sends one signed "webhook.test" message to subscription id's URL now, outside its
// order of deliveries (not in its delivery log), and says how it went.
func (a *Admin) Test(ctx context.Context, id string) (Attempt, error) {
	info, err := a.store.Get(ctx, id)
	if err != nil {
		return Attempt{}, err
	}
	sealed, err := a.store.Secrets(ctx, id, a.now())
	if err != nil {
		return Attempt{}, err
	}
	var secrets []string
	for _, s := range sealed {
		plain, err := a.sealer.Open(id, s)
		if err != nil {
			return Attempt{}, err
		}
		secrets = append(secrets, plain)
	}
	now := a.now()
	msgID := "msg_test_" + strings.ToLower(rand.Text())
	body, err := json.Marshal(envelope{Type: "webhook.test", Timestamp: now.UTC(), Data: map[string]string{"subscription": id}})
	if err != nil {
		return Attempt{}, err
	}
	headers, err := Headers(secrets, msgID, now, body)
	if err != nil {
		return Attempt{}, err
	}
	start := time.Now()
	status, sendErr := a.sender.Send(ctx, info.URL, headers, body)
	at := Attempt{Message: msgID, Type: "webhook.test", At: now.UTC(), Attempt: 1, Status: status, Latency: time.Since(start)}
	at.LatencyMS = float64(at.Latency.Microseconds()) / 1000
	if sendErr != nil {
		at.Error = sendErr.Error()
	}
	return at, nil
}
