package redisconn_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/redisconn"
	"github.com/jaego/jaego/internal/testenv"
)

// storm runs blocking reads whose contexts end long before the server answers them, as a
// hub's cancelled siblings or a request's deadline on WAIT do, from many goroutines.
func storm(ctx context.Context, c rueidis.Client, goroutines, rounds int) (calls int64) {
	var n atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				cctx, cancel := context.WithTimeout(ctx, time.Duration(5+i%20)*time.Millisecond)
				if i%2 == 0 { // half with a deadline only, half cancelled (context.Canceled) early
					time.AfterFunc(2*time.Millisecond, cancel)
				}
				_ = c.Do(cctx, c.B().Xread().Count(1).Block(3000).Streams().Key(fmt.Sprint("{s}", g)).Id("$").Build()).Error()
				cancel()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load()
}

// server is a private redis-server with no client of the test's own.
func server(t *testing.T) *testenv.RedisServer {
	srv, err := testenv.StartRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

func client(t *testing.T, addr string, b *redisconn.Budget, pool int) rueidis.Client {
	opt := rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, DisableRetry: true, BlockingPoolSize: pool}
	if b != nil {
		opt.DialCtxFn = b.Dial
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestBudgetHoldsUnderAbandonedBlockingCalls: thousands of blocking calls abandoned before
// the server answers never take the connections to the node past the budget, and the
// client works afterwards. rueidis's own pool bound does not hold there (its count is
// logged: without the budget it has opened several times its pool).
func TestBudgetHoldsUnderAbandonedBlockingCalls(t *testing.T) {
	t.Parallel()
	srv := server(t)
	port := testenv.Port(srv.Addr)

	unbounded := client(t, srv.Addr, nil, 4)
	end := testenv.SampleConns(t, port)
	storm(t.Context(), unbounded, 16, 40)
	without, _ := end()
	unbounded.Close()
	testenv.Eventually(t, "the unbudgeted client's connections closed", 30*time.Second, func() bool {
		conns, _ := testenv.ConnsByPort(os.Getpid())
		return conns[port] == 0
	})

	const per = 6 // the pool's 4, the pipeline, one spare
	b := redisconn.NewBudget(per)
	c := client(t, srv.Addr, b, 4)
	end = testenv.SampleConns(t, port)
	calls := storm(t.Context(), c, 16, 40)
	with, sockets := end()
	if with > per {
		t.Errorf("%d connections to the node with a budget of %d (open by its count: %d); the sockets then:\n%s", with, per, b.Open(srv.Addr), sockets)
	}
	if open := b.Open(srv.Addr); open > per {
		t.Errorf("the budget counts %d open, more than %d", open, per)
	}
	// The client still works, and the budget's count is the sockets' once they settle.
	if err := c.Do(t.Context(), c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("after the storm: %v", err)
	}
	testenv.Eventually(t, "the budget's count equal to the open sockets", 30*time.Second, func() bool {
		conns, _ := testenv.ConnsByPort(os.Getpid())
		return conns[port] == b.Open(srv.Addr)
	})
	t.Logf("%d abandoned blocking calls: at most %d connections without the budget (pool 4), %d with a budget of %d; %d dials waited, %d gave up, %d lost",
		calls, without, with, per, b.Waited(), b.Refused(), b.Lost())
}

// TestBudgetThroughAHang: while the node is stopped (SIGSTOP: the kernel still accepts
// connections for it, nothing answers), blocking calls with short deadlines keep failing
// and the client keeps dialling; the connections stay within the budget, and once the
// node resumes the client works again.
func TestBudgetThroughAHang(t *testing.T) {
	t.Parallel()
	srv := server(t)
	port := testenv.Port(srv.Addr)
	const per = 6
	b := redisconn.NewBudget(per)
	c := client(t, srv.Addr, b, 4)
	if err := c.Do(t.Context(), c.B().Ping().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	end := testenv.SampleConns(t, port)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = srv.Resume()
		}
	}()
	storm(t.Context(), c, 16, 10)
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	testenv.Eventually(t, "the client answered after the hang", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error() == nil
	})
	if most, sockets := end(); most > per {
		t.Errorf("%d connections to the node through the hang, budget %d (%d dropped unclosed); the sockets then:\n%s", most, per, b.Lost(), sockets)
	} else {
		t.Logf("at most %d connections through the hang (budget %d); %d dials waited, %d gave up, %d dropped unclosed", most, per, b.Waited(), b.Refused(), b.Lost())
	}
}

// TestBudgetWaitsForAClose: a dial beyond the budget waits for a connection to close and
// then opens; with none closing it fails after the dialer's timeout, or when its context
// ends; a connection closed twice gives its token back once.
func TestBudgetWaitsForAClose(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	addr := ln.Addr().String()
	b := redisconn.NewBudget(2)
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	first, err := b.Dial(t.Context(), addr, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Dial(t.Context(), addr, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Dial(t.Context(), addr, d, nil); err == nil {
		t.Fatal("a third connection opened with a budget of 2")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Dial(ctx, addr, &net.Dialer{Timeout: time.Hour}, nil); err == nil {
		t.Fatal("a dial with an ended context opened beyond the budget")
	}
	got := make(chan error, 1)
	go func() {
		c, err := b.Dial(t.Context(), addr, &net.Dialer{Timeout: time.Minute}, nil)
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	testenv.Eventually(t, "the third dial waiting", 10*time.Second, func() bool { return b.Waited() == 3 })
	first.Close()
	first.Close() // twice: one token back
	if err := <-got; err != nil {
		t.Fatalf("the waiting dial after a close: %v", err)
	}
	if b.Open(addr) != 1 { // second; the third closed on return
		t.Fatalf("open %d, want 1", b.Open(addr))
	}
	second.Close()
	if b.Open(addr) != 0 || b.Refused() != 2 || b.Lost() != 0 {
		t.Fatalf("open %d, refused %d, lost %d; want 0, 2, 0", b.Open(addr), b.Refused(), b.Lost())
	}
}

// TestBudgetDialsTLS: with a TLS configuration (rediss://) the budget's dial is a TLS one,
// as rueidis's own: a handshake with the server's certificate, and the token back on Close.
func TestBudgetDialsTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	b := redisconn.NewBudget(1)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.ServerName = "example.com" // the test certificate's name
	c, err := b.Dial(t.Context(), addr, &net.Dialer{Timeout: 5 * time.Second}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprint(c, "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(got), "HTTP/1.0 200") || !strings.HasSuffix(string(got), "ok") {
		t.Fatalf("over the budget's TLS connection: %q %v", got, err)
	}
	c.Close()
	if b.Open(addr) != 0 {
		t.Fatalf("open %d after Close, want 0", b.Open(addr))
	}
	if _, err := b.Dial(t.Context(), addr, &net.Dialer{Timeout: 5 * time.Second}, &tls.Config{ServerName: "example.com"}); err == nil {
		t.Fatal("a TLS dial trusted an unknown certificate")
	}
	if b.Open(addr) != 0 {
		t.Fatalf("a failed dial kept its token: open %d", b.Open(addr))
	}
}
