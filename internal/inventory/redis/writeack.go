package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/jaego"
)

// Write acknowledgement (design §8): Redis replicates asynchronously, so a write it answered
// can be missing on the replica promoted after its master died. With Options.AckReplicas a
// write is answered only once a replica confirmed it: the script calls of one shard group go
// in one DoMulti with WAIT 1 <ms> after them. rueidis sends a DoMulti holding a blocking
// command (WAIT) on one pooled connection, in order, and on a Cluster a keyless command in a
// DoMulti goes to the node of the other commands' slot: WAIT counts exactly the replicas
// that have this connection's writes.

// script is a Lua script sent by its SHA-1, or whole when the server does not have it.
type script struct {
	body string
	sha  string
}

func newScript(body string) script {
	sum := sha1.Sum([]byte(body))
	return script{body: body, sha: hex.EncodeToString(sum[:])}
}

// ErrNotReplicated answers a write that no replica confirmed within the request's deadline:
// it may or may not have reached the replica; a retry with the same ids is a harmless
// duplicate.
var ErrNotReplicated = jaego.Errorf(jaego.CodeNotReplicated,
	"the write was applied by the Redis master, but no replica confirmed it in time (--write-ack replicas): retry with the same ids, it is safe")

// ackWait is how long WAIT may block when the caller's context has no deadline.
const ackWait = 2 * time.Second

// execAcked runs execs of sc (each with its shard group in groups) and, per group, waits
// for a replica to confirm them; it answers the scripts' results in order, or
// ErrNotReplicated when some group's writes were not confirmed.
func (s *Store) execAcked(ctx context.Context, sc script, execs []rueidis.LuaExec, groups []int) ([]rueidis.RedisResult, error) {
	// One DoMulti per shard group on a Cluster (a keyless WAIT must share its commands'
	// slot); one for all on a single node, where one WAIT covers every write before it.
	byGroup := map[int][]int{}
	for i, g := range groups {
		if s.client.Mode() != rueidis.ClientModeCluster {
			g = 0
		}
		byGroup[g] = append(byGroup[g], i)
	}
	out := make([]rueidis.RedisResult, len(execs))
	var mu sync.Mutex
	var ackErr error
	var wg sync.WaitGroup
	for _, idx := range byGroup {
		wg.Go(func() {
			res, acked := s.groupAcked(ctx, sc, execs, idx)
			for j, i := range idx {
				out[i] = res[j]
			}
			if !acked {
				mu.Lock()
				ackErr = ErrNotReplicated
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out, ackErr
}

// groupAcked sends the execs idx (one shard group, one slot) and WAIT in one DoMulti: by SHA,
// again whole if the server lacked the script (nothing ran then). acked is whether a replica
// confirmed them; a failed script call counts as acked (it answers its own error).
//
// The call to rueidis carries no deadline and cannot be cancelled: it runs on a goroutine
// of its own, and groupAcked answers at the caller's deadline without it. A blocking call
// (WAIT) whose context ends while it waits for a connection of rueidis's pool corrupts
// that pool's count: Acquire answers a dead placeholder, which the pool then takes back as
// one of its own, and it opens one more connection than its size for every such call, for
// good (v1.0.79 and v1.0.80; TestChaos saw 73 connections to a node against a pool of 28
// after a hang). WAIT's own timeout ends the call once the node runs it; a node that hangs
// holds it until it answers or its connection breaks. Options.AckConcurrency bounds the
// calls under way.
func (s *Store) groupAcked(ctx context.Context, sc script, execs []rueidis.LuaExec, idx []int) ([]rueidis.RedisResult, bool) {
	failed := func(err error) ([]rueidis.RedisResult, bool) {
		res := make([]rueidis.RedisResult, len(idx))
		for j := range res {
			res[j] = rueidis.NewErrorResult(err)
		}
		return res, false
	}
	select {
	case s.ackSlots <- struct{}{}:
	case <-ctx.Done():
		return failed(ctx.Err()) // nothing was sent
	}
	timeout := ackWait // WAIT answers before the caller's deadline
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Millisecond, time.Until(d)-5*time.Millisecond)
	}
	type answer struct {
		res   []rueidis.RedisResult
		acked bool
	}
	done := make(chan answer, 1)
	go func() {
		defer func() { <-s.ackSlots }()
		res, acked := s.sendAcked(context.WithoutCancel(ctx), sc, execs, idx, timeout)
		done <- answer{res, acked}
	}()
	select {
	case a := <-done:
		return a.res, a.acked
	case <-ctx.Done():
		return failed(ctx.Err()) // it may still be applied: ErrNotReplicated says so
	}
}

func (s *Store) sendAcked(ctx context.Context, sc script, execs []rueidis.LuaExec, idx []int, timeout time.Duration) ([]rueidis.RedisResult, bool) {
	for _, whole := range []bool{false, true} {
		cmds := make(rueidis.Commands, 0, len(idx)+1)
		for _, i := range idx {
			e := execs[i]
			if whole {
				cmds = append(cmds, s.client.B().Eval().Script(sc.body).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build())
			} else {
				cmds = append(cmds, s.client.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build())
			}
		}
		cmds = append(cmds, s.client.B().Wait().Numreplicas(1).Timeout(timeout.Milliseconds()).Build())
		res := s.client.DoMulti(ctx, cmds...)
		if !whole && noScript(res[:len(idx)]) {
			continue
		}
		n, err := res[len(idx)].AsInt64()
		return res[:len(idx)], err == nil && n >= 1
	}
	return nil, false // not reached: the second round returns
}

// noScript reports whether any result is NOSCRIPT (the server lacks the script: a new or
// flushed node, a promoted replica).
func noScript(res []rueidis.RedisResult) bool {
	for _, r := range res {
		if re, ok := rueidis.IsRedisErr(r.Error()); ok && strings.HasPrefix(re.Error(), "NOSCRIPT") {
			return true
		}
	}
	return false
}
