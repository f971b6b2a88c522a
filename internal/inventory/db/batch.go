package db

import (
	"context"
	"sync"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// lookupBatcher gathers single lookups that arrive while others are being read into one
// statement (GetMany's `(store, sku) IN (…)`), so that under load the fallback pays one
// round trip for many lookups instead of one each: the round trip (the write to the socket
// and the wake-up of the server), not the indexed read, is what a lookup from the copy
// costs (docs/benchmarks.md). A lookup that finds nothing in flight goes at once, alone: an
// idle copy answers as fast as before. No goroutine runs while nothing is pending.
type lookupBatcher struct {
	read    func(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error)
	mu      sync.Mutex
	pending []*lookupReq
	running int // batches being read
	max     int // batches read at once; the rest wait and are gathered
}

type lookupReq struct {
	ctx  context.Context
	key  inventory.Key
	got  inventory.Lookup
	err  error
	done chan struct{}
}

// maxBatch bounds the keys of one gathered statement.
const maxBatch = 256

// batchTimeout bounds one gathered read: it serves callers whose contexts differ, so it
// takes none of theirs (each caller still stops waiting when its own context ends).
const batchTimeout = 5 * time.Second

// get reads key, gathered with the lookups pending beside it.
func (b *lookupBatcher) get(ctx context.Context, key inventory.Key) (inventory.Lookup, error) {
	r := &lookupReq{ctx: ctx, key: key, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	start := b.running < b.max
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.drain()
	}
	select {
	case <-r.done:
		return r.got, r.err
	case <-ctx.Done():
		return inventory.Lookup{}, ctx.Err()
	}
}

// drain reads what is pending, a batch at a time, until nothing is.
func (b *lookupBatcher) drain() {
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxBatch)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()

		keys := make([]inventory.Key, 0, n)
		live := batch[:0:0]
		for _, r := range batch {
			if r.ctx.Err() != nil { // its caller left
				continue
			}
			keys, live = append(keys, r.key), append(live, r)
		}
		if len(live) > 0 {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), batchTimeout)
			ls, err := b.read(ctx, keys)
			cancel()
			for i, r := range live {
				if err != nil {
					r.err = err
				} else {
					r.got = ls[i]
				}
			}
		}
		for _, r := range batch {
			close(r.done)
		}
	}
}
