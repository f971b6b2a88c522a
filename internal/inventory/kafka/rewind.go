package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RewindGroup moves the committed offsets of group on topic back to at (partition →
// offset of the next record to consume), for a restore: Kafka events lost with Redis are
// consumed again (idempotently). Kafka takes the commit only from an empty group: consumers
// leave it as soon as their store is lost (ConsumerOptions.Loss), so RewindGroup waits for
// the group to empty, up to wait, telling waiting what it waits for (once a second).
func RewindGroup(ctx context.Context, brokers []string, group, topic string, at map[int32]int64, wait time.Duration, waiting func(members int)) error {
	if len(at) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := emptyGroup(ctx, adm, group, wait, waiting); err != nil {
		return err
	}
	var os kadm.Offsets
	for p, o := range at {
		os.AddOffset(topic, p, max(o, 0), -1)
	}
	res, err := adm.CommitOffsets(ctx, group, os)
	if err != nil {
		return fmt.Errorf("rewinding group %s: %w", group, err)
	}
	for _, ps := range res {
		for p, r := range ps {
			if r.Err != nil {
				return fmt.Errorf("rewinding group %s, %s partition %d: %w (stop the group's consumers first)", group, topic, p, r.Err)
			}
		}
	}
	return nil
}

// emptyGroup returns once group has no members, or fails after wait.
func emptyGroup(ctx context.Context, adm *kadm.Client, group string, wait time.Duration, waiting func(members int)) error {
	deadline := time.Now().Add(wait)
	var told time.Time
	for {
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return fmt.Errorf("describing group %s: %w", group, err)
		}
		d, ok := described[group]
		if ok && d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound) {
			return fmt.Errorf("describing group %s: %w", group, d.Err)
		}
		members := len(d.Members)
		if members == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group %s still has %d members after %s: a consumer that is not jaego serve (or one of an older jaego) is in it; stop it, then run the restore again", group, members, wait)
		}
		if waiting != nil && time.Since(told) >= time.Second {
			waiting(members)
			told = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
