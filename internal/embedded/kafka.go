package embedded

import (
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is a running in-process Kafka-protocol broker (franz-go's kfake): real wire
// protocol, consumer groups, idempotent producers, so that kcat or any Kafka client can
// produce to jaego dev.
type Kafka struct {
	*kfake.Cluster
	Addr string
}

// StartKafka starts a one-broker cluster listening on addr ("127.0.0.1:0" for a free port)
// with the given topics created with partitions partitions each.
func StartKafka(addr string, partitions int32, topics ...string) (*Kafka, error) {
	var bound string
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topics...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond), // tests and crash drills use short sessions
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, addr)
			if err == nil {
				bound = l.Addr().String()
			}
			return l, err
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on %s: %w", addr, err)
	}
	return &Kafka{Cluster: c, Addr: bound}, nil
}
