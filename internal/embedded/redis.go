// Package embedded runs the in-process servers of `jaego dev`: a Redis-protocol server
// (miniredis) today, so that jaego runs with no external server at all while its code paths
// stay the production ones (the same rueidis client, the same Lua scripts).
package embedded

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"
)

// TTLTick is how often the embedded Redis counts TTLs down by the wall clock.
const TTLTick = 100 * time.Millisecond

// Redis is a running in-process Redis-protocol server.
type Redis struct {
	*miniredis.Miniredis
	stop chan struct{}
	done sync.WaitGroup
}

// StartRedis listens on addr ("127.0.0.1:0" for a free port). TIME and stream ids follow
// the wall clock, and TTLs count down by it, as on a real Redis.
//
// miniredis's own ClockTTL(true) does the same but walks every key with a TTL on every
// command, which turns a day of idempotency marks into a quadratic slowdown; a ticker that
// fast-forwards every TTLTick costs one walk per tick instead, at TTLTick of precision.
func StartRedis(addr string) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded redis on %s: %w", addr, err)
	}
	r := &Redis{Miniredis: m, stop: make(chan struct{})}
	r.done.Add(1)
	go r.countDownTTLs()
	return r, nil
}

func (r *Redis) countDownTTLs() {
	defer r.done.Done()
	t := time.NewTicker(TTLTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Close stops the server.
func (r *Redis) Close() {
	close(r.stop)
	r.done.Wait()
	r.Miniredis.Close()
}

// ClientOption is how rueidis must talk to miniredis: it has no RESP3 client tracking, so
// server-assisted client-side caching is off; and it refuses commands on a connection that
// subscribed, so RESP2 keeps pub/sub on connections of its own.
func (r *Redis) ClientOption() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true, AlwaysRESP2: true}
}
