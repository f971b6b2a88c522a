package breaker

import (
	"context"
	"log/slog"
	"time"
)

// GuardLoss keeps the breaker forced open while lost says Redis lost its data (it answers,
// but empty: its epoch mark is gone), checking every period until ctx ends, so reads come
// from the durable copy until `jaego restore` makes Redis whole; then it hands the breaker
// back to its rules. Writes are refused by the apply script itself in the meantime.
func GuardLoss(ctx context.Context, b *Breaker, lost func(context.Context) (bool, error), every time.Duration, log *slog.Logger) {
	forced := false
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		check, cancel := context.WithTimeout(ctx, every)
		gone, err := lost(check)
		cancel()
		switch {
		case err == nil && gone && !forced:
			log.Error("Redis lost its data (its epoch mark is gone): reads come from the durable copy and writes are refused until `jaego restore`")
			b.Force()
			forced = true
		case err == nil && !gone && forced:
			log.Info("Redis is whole again (epoch mark back): the breaker follows its rules again")
			b.Auto()
			forced = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
