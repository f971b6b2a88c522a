// Package redisconn holds a process's Redis connections to a budget: at most so many open
// TCP connections to each node, whatever the client library does with them.
//
// rueidis bounds its pool of connections for blocking commands (WAIT, XREAD BLOCK) by a
// count that can drift: a call whose context ends while it waits for a pooled connection
// is answered a dead placeholder, which the pool then takes back as one of its own,
// lowering its count without closing anything (v1.0.79 and v1.0.80). After a hang, when
// requests' deadlines end while they wait, the pool opens one connection more than its
// size for each of them, and keeps them (TestChaos saw 73 to one node against a pool of 28;
// TestBudgetHoldsUnderAbandonedBlockingCalls shows it). rueidis also keeps a node's old
// connections for five seconds when a topology refresh replaces them. jaego's writes carry
// no deadline into that pool (invredis's groupAcked), and this budget is the bound that
// holds whatever else happens: it is kept where every connection is made, the dialer. A dial beyond it waits for one of the node's connections to close, up to the
// dial timeout, and then fails like a refused one.
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Budget caps the open connections to each node address. Its Dial is a
// rueidis.ClientOption.DialCtxFn.
type Budget struct {
	per   int
	mu    sync.Mutex
	nodes map[string]*node
}

type node struct {
	slots                 chan struct{} // one token per open connection
	waited, refused, lost atomic.Int64
}

// NewBudget returns a budget of per connections to each node (per ≥ 1).
func NewBudget(per int) *Budget {
	return &Budget{per: max(per, 1), nodes: map[string]*node{}}
}

func (b *Budget) node(addr string) *node {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.nodes[addr]
	if n == nil {
		n = &node{slots: make(chan struct{}, b.per)}
		b.nodes[addr] = n
	}
	return n
}

// Dial opens a connection to addr within its budget: at once while the node has fewer
// than Per open, otherwise once one of them closes, waiting at most the dialer's timeout
// (or ctx).
func (b *Budget) Dial(ctx context.Context, addr string, d *net.Dialer, tlsConfig *tls.Config) (net.Conn, error) {
	n := b.node(addr)
	select {
	case n.slots <- struct{}{}:
	default:
		n.waited.Add(1)
		wait := d.Timeout
		if wait <= 0 {
			wait = 5 * time.Second
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case n.slots <- struct{}{}:
		case <-t.C:
			n.refused.Add(1)
			return nil, fmt.Errorf("redis %s: all %d connections of this process's budget stay open (the node does not answer the commands they carry)", addr, b.per)
		case <-ctx.Done():
			n.refused.Add(1)
			return nil, fmt.Errorf("redis %s: waiting for a connection of the budget (%d): %w", addr, b.per, ctx.Err())
		}
	}
	var conn net.Conn
	var err error
	if tlsConfig != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		<-n.slots
		return nil, err
	}
	c := &budgeted{Conn: conn, token: &token{conn: conn, free: func() { <-n.slots }}}
	// A connection dropped without Close is closed, and its token given back, when it is
	// collected (counted: it would be a leak of the client's). The token holds the socket,
	// not the wrapper, so that the wrapper can be collected.
	c.cleanup = runtime.AddCleanup(c, func(t *token) {
		if t.give() {
			n.lost.Add(1)
		}
	}, c.token)
	return c, nil
}

// Open is the number of connections open to addr now.
func (b *Budget) Open(addr string) int {
	b.mu.Lock()
	n := b.nodes[addr]
	b.mu.Unlock()
	if n == nil {
		return 0
	}
	return len(n.slots)
}

// Waited counts dials that found their node's budget spent and waited; Refused, those
// that gave up; Lost, connections collected without being closed. All nodes.
func (b *Budget) Waited() int64  { return b.sum(func(n *node) int64 { return n.waited.Load() }) }
func (b *Budget) Refused() int64 { return b.sum(func(n *node) int64 { return n.refused.Load() }) }
func (b *Budget) Lost() int64    { return b.sum(func(n *node) int64 { return n.lost.Load() }) }

func (b *Budget) sum(f func(*node) int64) (total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.nodes {
		total += f(n)
	}
	return total
}

var (
	openDesc = prometheus.NewDesc("jaego_redis_connections", "TCP connections open to a Redis node (at most jaego_redis_connections_budget).",
		[]string{"node"}, nil)
	budgetDesc = prometheus.NewDesc("jaego_redis_connections_budget", "Connections a process may hold open to one Redis node.", nil, nil)
	waitDesc   = prometheus.NewDesc("jaego_redis_dial_waits_total", "Dials that found their node's connections all open and waited for one to close.",
		[]string{"node"}, nil)
	refuseDesc = prometheus.NewDesc("jaego_redis_dials_refused_total", "Dials that waited for a connection of the budget and gave up (the call failed).",
		[]string{"node"}, nil)
	lostDesc = prometheus.NewDesc("jaego_redis_connections_lost_total", "Connections the client dropped without closing them (given back when collected).",
		[]string{"node"}, nil)
)

// Describe implements prometheus.Collector.
func (b *Budget) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{openDesc, budgetDesc, waitDesc, refuseDesc, lostDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (b *Budget) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(b.per))
	b.mu.Lock()
	defer b.mu.Unlock()
	for addr, n := range b.nodes {
		ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(len(n.slots)), addr)
		ch <- prometheus.MustNewConstMetric(waitDesc, prometheus.CounterValue, float64(n.waited.Load()), addr)
		ch <- prometheus.MustNewConstMetric(refuseDesc, prometheus.CounterValue, float64(n.refused.Load()), addr)
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(n.lost.Load()), addr)
	}
}

// budgeted gives its token back when closed, once.
type budgeted struct {
	net.Conn
	token   *token
	cleanup runtime.Cleanup
}

func (c *budgeted) Close() error {
	c.cleanup.Stop()
	return c.token.close()
}

// token is a connection's place in its node's budget: given back once, after the socket
// is closed.
type token struct {
	once sync.Once
	conn net.Conn
	free func()
	err  error
}

// close closes the socket and gives the token back (once); later calls answer the first's
// error.
func (t *token) close() error {
	t.give()
	return t.err
}

// give reports whether this call closed it.
func (t *token) give() (first bool) {
	t.once.Do(func() {
		first = true
		t.err = t.conn.Close()
		t.free()
	})
	return first
}
