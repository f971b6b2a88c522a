package embedded_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/embedded"
)

// TestTTLsCountDownByWallClock: keys of the embedded Redis expire on their own, as the
// change streams, idempotency marks and lock leases rely on.
func TestTTLsCountDownByWallClock(t *testing.T) {
	srv, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := rueidis.NewClient(srv.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Do(ctx, c.B().Set().Key("lease").Value("x").Px(300*time.Millisecond).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, c.B().Set().Key("kept").Value("x").Ex(time.Hour).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		n, err := c.Do(ctx, c.B().Exists().Key("lease").Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a 300ms key still exists after 5s")
		}
		time.Sleep(embedded.TTLTick / 4)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("key expired after %s, before its 300ms TTL", el)
	}
	if n, _ := c.Do(ctx, c.B().Exists().Key("kept").Build()).AsInt64(); n != 1 {
		t.Error("a 1h key expired")
	}
	// TIME follows the wall clock (stream ids and updated_at depend on it).
	tm, err := c.Do(ctx, c.B().Time().Build()).AsStrSlice()
	if err != nil || len(tm) != 2 {
		t.Fatalf("TIME: %v %v", tm, err)
	}
	if sec, err := strconv.ParseInt(tm[0], 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("TIME answered %v, wall clock is %v", tm, time.Now().Unix())
	}
}
