package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RewindGroup moves the committed offsets of group on topic back to at (partition →
// offset of the next record to consume), for a restore: Kafka events lost with Redis are
// consumed again (idempotently). The group must have no members: consumers leave it while
// their store is lost (ConsumerOptions.WaitWhole), and Kafka refuses the commit otherwise.
func RewindGroup(ctx context.Context, brokers []string, group, topic string, at map[int32]int64) error {
	if len(at) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	var os kadm.Offsets
	for p, o := range at {
		os.AddOffset(topic, p, max(o, 0), -1)
	}
	res, err := kadm.NewClient(cl).CommitOffsets(ctx, group, os)
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
