package testenv

import (
	"testing"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/embedded"
)

// Kafka starts a private in-process Kafka-protocol broker (kfake, the real wire protocol)
// on a free loopback port with the topics created, and returns its address.
func Kafka(t testing.TB, partitions int32, topics ...string) string {
	t.Helper()
	k, err := embedded.StartKafka("127.0.0.1:0", partitions, topics...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(k.Close)
	return k.Addr
}

// EmbeddedRedis starts jaego dev's in-process Redis-protocol server and returns a client
// configured the way jaego dev configures it.
func EmbeddedRedis(t testing.TB) rueidis.Client {
	t.Helper()
	srv, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(srv.Close)
	c, err := rueidis.NewClient(srv.ClientOption())
	if err != nil {
		t.Fatalf("testenv: client for the embedded redis: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}
