// Package lock is a distributed lock on Redis with the semantics of Redisson's RLock, plus
// fencing tokens, for multi-step work one Lua script cannot do (rebuilding the promotion
// cache, a store-wide stock count, a re-sync from PostgreSQL).
//
// Guarantees:
//   - Mutual exclusion while a lease runs: acquisition is one atomic SET-if-absent with a
//     lease (PX); at most one holder per name at any instant of Redis time.
//   - Only the owner unlocks: Unlock is a compare-and-delete of the owner's random id and
//     token; unlocking a lock one no longer holds is ErrNotHeld and leaves the lock alone.
//     ForceUnlock is the operators' way out.
//   - Leases: with a lease the lock expires after it whatever the holder does. With lease 0
//     a watchdog extends it (to WatchdogTimeout, every third of it, Redisson's 30 s / 10 s)
//     while the holder's process lives and until Unlock; a dead or paused holder's lock frees
//     within WatchdogTimeout.
//   - The holder learns when it lost the lock: Lost() is closed when the lease ran out, a
//     renewal found the lock gone, or renewals kept failing until the lease must have ended.
//   - Waiters are woken by a pub/sub message published in the same script that deletes the
//     lock, not by polling; they also wake when the holder's lease runs out (they know its
//     PTTL) and on a slow safety poll.
//   - Fencing: every acquisition returns a token from a per-name counter that only rises.
//     A paused holder whose lease ran out may still believe it holds the lock, so every write
//     it guards must carry the token and be refused when a newer one was seen (the
//     promotion cache's fence; the tests' guardedHSet shows the pattern on a Redis hash).
//   - Cluster: a lock's key, its counter and its channel share the hash tag {name}.
//
// Not provided: reentrancy (Go has no thread identity; take the lock once and pass the *Lock
// down), fairness (waiters race when woken), and safety against Redis failover losing an
// acknowledged SET (as with Redisson; fencing tokens are the defence that remains).
//
// Why not rueidislock: it has auto-extension and context-bound locks, but no fencing
// tokens, no pub/sub wake-up (it waits on client-side-cache invalidations, which miniredis
// cannot send) and no force-unlock; what it would save is about the size of this file.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/rueidis"
)

// Errors of the lock.
var (
	ErrNotAcquired = errors.New("lock not acquired within the wait time")
	ErrNotHeld     = errors.New("lock not held: its lease ran out or it was force-unlocked")
	ErrInvalidName = jaego.Invalidf("name", "lock name must be 1-128 characters of A-Z a-z 0-9 _ . : -")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// Options configures a Locker; zero fields take their defaults.
type Options struct {
	// Prefix starts every key; default "jg:lock".
	Prefix string
	// WatchdogTimeout is the lease a watchdog keeps renewing (every third of it); default 30s.
	WatchdogTimeout time.Duration
	// SafetyPoll is how often a waiter retries without a wake-up message; default 5s.
	SafetyPoll time.Duration
	// ClassicPubSub uses PUBLISH/SUBSCRIBE instead of sharded SPUBLISH/SSUBSCRIBE (Redis 7),
	// for servers without sharded pub/sub such as jaego dev's embedded one.
	ClassicPubSub bool
	Registerer    prometheus.Registerer
	Logger        *slog.Logger
}

// Locker hands out locks on one Redis (standalone or Cluster).
type Locker struct {
	client  rueidis.Client
	opts    Options
	m       lockMetrics
	waiters atomic.Int64
}

// Waiters is how many callers of this Locker are subscribed and waiting for a release.
func (l *Locker) Waiters() int64 { return l.waiters.Load() }

type lockMetrics struct {
	acquired *prometheus.CounterVec
	wait     prometheus.Histogram
	lost     prometheus.Counter
	held     prometheus.Gauge
	waiting  prometheus.Gauge
}

// New returns a Locker on client.
func New(client rueidis.Client, opts Options) *Locker {
	if opts.Prefix == "" {
		opts.Prefix = "jg:lock"
	}
	if opts.WatchdogTimeout <= 0 {
		opts.WatchdogTimeout = 30 * time.Second
	}
	if opts.SafetyPoll <= 0 {
		opts.SafetyPoll = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := promauto.With(opts.Registerer)
	return &Locker{client: client, opts: opts, m: lockMetrics{
		acquired: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_lock_acquire_total",
			Help: "Lock acquisition attempts by outcome (acquired, timeout, canceled, error)."}, []string{"outcome"}),
		wait: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_lock_wait_seconds",
			Help: "Time from asking for a lock to holding it.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20)}),
		lost: f.NewCounter(prometheus.CounterOpts{Name: "jaego_lock_lost_total",
			Help: "Locks whose holder lost them before unlocking (lease ran out, force-unlocked, renewal failed)."}),
		held:    f.NewGauge(prometheus.GaugeOpts{Name: "jaego_lock_held", Help: "Locks held by this process now."}),
		waiting: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_lock_waiters", Help: "Callers of this process waiting for a lock now."}),
	}}
}

func (l *Locker) key(name string) string   { return l.opts.Prefix + ":{" + name + "}" }
func (l *Locker) fence(name string) string { return l.opts.Prefix + ":{" + name + "}:fence" }

// Channel is the pub/sub channel on which name's releases are announced.
func (l *Locker) Channel(name string) string { return l.opts.Prefix + ":{" + name + "}:released" }

func (l *Locker) publishCmd() string {
	if l.opts.ClassicPubSub {
		return "PUBLISH"
	}
	return "SPUBLISH"
}

// acquireScript: KEYS lock, fence; ARGV owner, lease ms. Answers {1, token} or {0, pttl}.
var acquireScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. t, 'PX', ARGV[2])
  return {1, t}
end
return {0, redis.call('PTTL', KEYS[1])}`)

// releaseScript: KEYS lock, channel; ARGV value (” = any: force), publish command.
// Deletes the lock if it holds value and tells the waiters. Answers 1 or 0.
var releaseScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if not v or (ARGV[1] ~= '' and v ~= ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call(ARGV[2], KEYS[2], v)
return 1`)

// extendScript: KEYS lock; ARGV value, lease ms. Answers 1 if still held.
var extendScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// Lock is a held lock.
type Lock struct {
	Name  string
	Token int64 // fencing token: rises with every acquisition of Name

	l        *Locker
	value    string
	stop     chan struct{} // closed by Unlock: ends the watchdog or lease timer
	lost     chan struct{}
	lostOnce sync.Once
	stopOnce sync.Once
	done     sync.WaitGroup
}

// Lost is closed when the holder no longer holds the lock without having unlocked it.
func (k *Lock) Lost() <-chan struct{} { return k.lost }

// TryLock acquires name, waiting up to wait (0: one attempt). With lease > 0 the lock
// expires after lease; with lease 0 a watchdog keeps it until Unlock. After wait it answers
// ErrNotAcquired; when ctx ends first, ctx's error.
func (l *Locker) TryLock(ctx context.Context, name string, wait, lease time.Duration) (*Lock, error) {
	if !nameRE.MatchString(name) {
		return nil, ErrInvalidName
	}
	start := time.Now()
	k, err := l.acquire(ctx, name, start.Add(wait), lease)
	switch {
	case err == nil:
		l.m.acquired.WithLabelValues("acquired").Inc()
		l.m.wait.Observe(time.Since(start).Seconds())
		l.m.held.Inc()
	case errors.Is(err, ErrNotAcquired):
		l.m.acquired.WithLabelValues("timeout").Inc()
	case ctx.Err() != nil:
		l.m.acquired.WithLabelValues("canceled").Inc()
	default:
		l.m.acquired.WithLabelValues("error").Inc()
	}
	return k, err
}

// Lock acquires name, waiting until it is free or ctx ends.
func (l *Locker) Lock(ctx context.Context, name string, lease time.Duration) (*Lock, error) {
	return l.TryLock(ctx, name, 1<<62, lease)
}

func (l *Locker) acquire(ctx context.Context, name string, deadline time.Time, lease time.Duration) (*Lock, error) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	owner := hex.EncodeToString(id[:])
	effective := lease
	if lease <= 0 {
		effective = l.opts.WatchdogTimeout
	}
	try := func() (*Lock, time.Duration, error) {
		res, err := acquireScript.Exec(ctx, l.client, []string{l.key(name), l.fence(name)},
			[]string{owner, strconv.FormatInt(effective.Milliseconds(), 10)}).AsIntSlice()
		if err != nil || len(res) != 2 {
			return nil, 0, fmt.Errorf("lock %s: acquire: %w", name, err)
		}
		if res[0] == 1 {
			return l.held(name, owner, res[1], lease), 0, nil
		}
		return nil, time.Duration(max(res[1], 1)) * time.Millisecond, nil
	}
	k, ttl, err := try()
	if k != nil || err != nil {
		return k, err
	}
	if !time.Now().Before(deadline) {
		return nil, ErrNotAcquired
	}

	// Subscribe before trying again, so that no release between the try and the wait is
	// missed.
	wake, unsubscribe, err := l.subscribe(ctx, name)
	if err != nil {
		return nil, err
	}
	defer unsubscribe()
	l.waiters.Add(1)
	l.m.waiting.Inc()
	defer func() { l.waiters.Add(-1); l.m.waiting.Dec() }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if k, ttl, err = try(); k != nil || err != nil {
			return k, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, ErrNotAcquired
		}
		timer.Reset(min(ttl, left, l.opts.SafetyPoll))
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// subscribe listens on name's release channel until unsubscribe is called. It returns once
// the server confirmed the subscription.
func (l *Locker) subscribe(ctx context.Context, name string) (<-chan struct{}, func(), error) {
	wake := make(chan struct{}, 1)
	confirmed := make(chan struct{})
	var once sync.Once
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	hooked := rueidis.WithOnSubscriptionHook(subCtx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "subscribe" || s.Kind == "ssubscribe" {
			once.Do(func() { close(confirmed) })
		}
	})
	var cmd rueidis.Completed
	if l.opts.ClassicPubSub {
		cmd = l.client.B().Subscribe().Channel(l.Channel(name)).Build()
	} else {
		cmd = l.client.B().Ssubscribe().Channel(l.Channel(name)).Build()
	}
	errc := make(chan error, 1)
	go func() {
		errc <- l.client.Receive(hooked, cmd, func(rueidis.PubSubMessage) {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-confirmed:
		return wake, func() { cancel(); <-errc }, nil
	case err := <-errc:
		cancel()
		return nil, nil, fmt.Errorf("lock %s: subscribe: %w", name, err)
	case <-ctx.Done():
		cancel()
		<-errc
		return nil, nil, ctx.Err()
	}
}

func (l *Locker) held(name, owner string, token int64, lease time.Duration) *Lock {
	k := &Lock{Name: name, Token: token, l: l, value: owner + ":" + strconv.FormatInt(token, 10),
		stop: make(chan struct{}), lost: make(chan struct{})}
	k.done.Add(1)
	if lease > 0 {
		go k.expireAfter(lease)
	} else {
		go k.watchdog()
	}
	return k
}

func (k *Lock) markLost(why string) {
	k.lostOnce.Do(func() {
		close(k.lost)
		k.l.m.lost.Inc()
		k.l.m.held.Dec()
		k.l.opts.Logger.Warn("lock lost", "lock", k.Name, "token", k.Token, "why", why)
	})
}

// expireAfter marks a leased lock lost when its lease runs out on the local clock.
func (k *Lock) expireAfter(lease time.Duration) {
	defer k.done.Done()
	t := time.NewTimer(lease)
	defer t.Stop()
	select {
	case <-t.C:
		k.markLost("lease ran out")
	case <-k.stop:
	}
}

// watchdog renews the lease every third of WatchdogTimeout. A renewal that finds the lock
// gone, or failures until the last successful renewal's lease is over, lose the lock.
func (k *Lock) watchdog() {
	defer k.done.Done()
	timeout := k.l.opts.WatchdogTimeout
	validUntil := time.Now().Add(timeout)
	tick := time.NewTicker(timeout / 3)
	defer tick.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout/3)
		sent := time.Now()
		n, err := extendScript.Exec(ctx, k.l.client, []string{k.l.key(k.Name)},
			[]string{k.value, strconv.FormatInt(timeout.Milliseconds(), 10)}).AsInt64()
		cancel()
		switch {
		case err == nil && n == 1:
			validUntil = sent.Add(timeout)
		case err == nil:
			k.markLost("lock gone at renewal")
			return
		case time.Now().After(validUntil):
			k.markLost("renewals failed until the lease ran out: " + err.Error())
			return
		}
	}
}

// Unlock releases the lock. ErrNotHeld means it was no longer held (its lease ran out or it
// was force-unlocked): whatever it guarded may have been done by someone else meanwhile.
func (k *Lock) Unlock(ctx context.Context) error {
	k.stopOnce.Do(func() { close(k.stop) })
	k.done.Wait()
	n, err := releaseScript.Exec(ctx, k.l.client, []string{k.l.key(k.Name), k.l.Channel(k.Name)},
		[]string{k.value, k.l.publishCmd()}).AsInt64()
	if err != nil {
		return fmt.Errorf("unlock %s: %w", k.Name, err)
	}
	if n == 0 {
		k.markLost("not held at unlock")
		return fmt.Errorf("unlock %s (token %d): %w", k.Name, k.Token, ErrNotHeld)
	}
	k.lostOnce.Do(func() { k.l.m.held.Dec() }) // released, not lost: Lost() stays open
	return nil
}

// ForceUnlock deletes name's lock whoever holds it and wakes its waiters; it answers
// whether there was a lock. Its holder learns at its next renewal or unlock.
func (l *Locker) ForceUnlock(ctx context.Context, name string) (bool, error) {
	if !nameRE.MatchString(name) {
		return false, ErrInvalidName
	}
	n, err := releaseScript.Exec(ctx, l.client, []string{l.key(name), l.Channel(name)}, []string{"", l.publishCmd()}).AsInt64()
	if err != nil {
		return false, jaego.Unavailable("force-unlock "+name, err)
	}
	if n == 1 {
		l.opts.Logger.Warn("lock force-unlocked", "lock", name)
	}
	return n == 1, nil
}

// Info describes a lock held now.
type Info struct {
	Name  string        `json:"name"`
	Token int64         `json:"token"`
	TTL   time.Duration `json:"-"`
	TTLms int64         `json:"ttl_ms"`
}

// List returns the locks held now, by name, from every node (SCAN, never KEYS).
func (l *Locker) List(ctx context.Context) ([]Info, error) {
	seen := map[string]bool{}
	var out []Info
	for _, node := range l.nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(l.opts.Prefix+":{*}").Count(1000).Build()).AsScanEntry()
			if err != nil {
				return nil, jaego.Unavailable("list locks", err)
			}
			for _, key := range e.Elements {
				name := strings.TrimSuffix(strings.TrimPrefix(key, l.opts.Prefix+":{"), "}")
				if seen[name] {
					continue
				}
				seen[name] = true
				v, err := node.Do(ctx, node.B().Get().Key(key).Build()).ToString()
				if rueidis.IsRedisNil(err) {
					continue // released meanwhile
				}
				if err != nil {
					return nil, jaego.Unavailable("list locks", err)
				}
				pttl, _ := node.Do(ctx, node.B().Pttl().Key(key).Build()).AsInt64()
				_, tok, _ := strings.Cut(v, ":")
				token, _ := strconv.ParseInt(tok, 10, 64)
				out = append(out, Info{Name: name, Token: token, TTL: time.Duration(pttl) * time.Millisecond, TTLms: pttl})
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return out, nil
}

// nodes is every node of a Cluster, or the one server.
func (l *Locker) nodes() []rueidis.Client {
	var out []rueidis.Client
	for _, c := range l.client.Nodes() {
		out = append(out, c)
	}
	return out
}

// Hold is Lock for callers that only need the fencing token and a release: it waits until
// it holds name (or ctx ends) and returns the token and Unlock.
func (l *Locker) Hold(ctx context.Context, name string, lease time.Duration) (int64, func(context.Context) error, error) {
	k, err := l.Lock(ctx, name, lease)
	if err != nil {
		return 0, nil, err
	}
	return k.Token, k.Unlock, nil
}

var raiseFenceScript = rueidis.NewLuaScript(`
local cur, min = tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[1])
if cur < min then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return tostring(cur)`)

// RaiseFence makes every later acquisition of name get a token above min, and returns the
// token counter as it is then (min or more: the last token given). A restore needs it: a
// Redis that lost its data lost the token counters too, while the writes the lock guarded
// (the durable copy) still hold the highest token they saw.
func (l *Locker) RaiseFence(ctx context.Context, name string, min int64) (int64, error) {
	if !nameRE.MatchString(name) {
		return 0, ErrInvalidName
	}
	s, err := raiseFenceScript.Exec(ctx, l.client, []string{l.fence(name)}, []string{strconv.FormatInt(min, 10)}).ToString()
	if err != nil {
		return 0, jaego.Unavailable("raise fence "+name, err)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lock %s: token counter %q: %w", name, s, err)
	}
	return n, nil
}
