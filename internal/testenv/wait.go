package testenv

import (
	"context"
	"testing"
	"time"
)

// The one way tests wait: for a condition with a deadline, or for a channel bounded by the
// test's context. Neither can hang a suite: each fails the test, saying what it waited for.

// pollEvery is how often Eventually looks again.
const pollEvery = 10 * time.Millisecond

// Eventually polls cond until it holds, failing the test after limit with what (and what
// say says of the state then, when given).
func Eventually(t testing.TB, what string, limit time.Duration, cond func() bool, say ...func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			detail := ""
			for _, f := range say {
				detail += ": " + f()
			}
			t.Fatalf("waited %v for %s%s", limit, what, detail)
		}
		time.Sleep(pollEvery)
	}
}

// Recv receives from ch, failing the test with what if ctx ends first.
func Recv[T any](t testing.TB, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waited for %s: %v", what, context.Cause(ctx))
		var zero T
		return zero
	}
}
