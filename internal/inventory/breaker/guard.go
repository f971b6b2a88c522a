package breaker

import (
	"context"
	"log/slog"
	"time"
)

// GuardLoss watches for Redis losing its data (it answers, but a group's epoch mark is gone)
// every period until ctx ends: a loss puts the breaker in its lost state (reads from the
// durable copy, writes refused), and the marks coming back (a finished `jaego restore`)
// end it. Reads notice a loss by themselves too, on their first request after it; the
// guard covers a quiet system. It never touches an operator's forced_open.
func GuardLoss(ctx context.Context, b *Breaker, lost func(context.Context) (bool, error), every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		check, cancel := context.WithTimeout(ctx, every)
		gone, err := lost(check)
		cancel()
		switch {
		case err == nil && gone:
			b.MarkLost()
		case err == nil && !gone:
			b.Restored()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
