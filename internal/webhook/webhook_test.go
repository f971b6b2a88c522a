package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// TestSignatureVector: the Standard Webhooks test vector (the one the reference libraries
// test with; `new Webhook(secret).sign(...)` of the TypeScript library gives the same).
func TestSignatureVector(t *testing.T) {
	h, err := Headers([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h["webhook-signature"], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if h["webhook-timestamp"] != "1614265330" || h["webhook-id"] != "msg_p5jXN8AQM9LWM0D4loKWxJek" {
		t.Fatalf("headers %v", h)
	}
	two, _ := Headers([]string{NewSecret(), NewSecret()}, "m", time.Unix(1, 0), nil)
	if sigs := strings.Split(two["webhook-signature"], " "); len(sigs) != 2 || sigs[0] == sigs[1] {
		t.Fatalf("two secrets: %q", two["webhook-signature"])
	}
	if _, err := Headers([]string{"whsec_short"}, "m", time.Unix(1, 0), nil); err == nil {
		t.Fatal("a malformed secret signed")
	}
}

// TestSealer: a sealed secret opens only with the same key and for the same subscription.
func TestSealer(t *testing.T) {
	s, err := NewSealer([]byte("0123456789abcdef0123456789abcdef\n"))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal("wh_a", "whsec_x")
	if strings.Contains(string(sealed), "whsec") {
		t.Fatalf("the sealed form shows the secret: %s", sealed)
	}
	if got, err := s.Open("wh_a", sealed); err != nil || got != "whsec_x" {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := s.Open("wh_b", sealed); err == nil {
		t.Fatal("a secret opened for another subscription")
	}
	other, _ := NewSealer([]byte("another key, also 32 characters long"))
	if _, err := other.Open("wh_a", sealed); err == nil {
		t.Fatal("a secret opened with another key")
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Fatal("a short key was taken")
	}
}

// TestTargets: design §14's rule: public addresses only, unless inside an allowed network.
func TestTargets(t *testing.T) {
	none, _ := ParseAllowNets("")
	office, err := ParseAllowNets("10.20.0.0/16, 127.0.0.1/32")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr          string
		none, allowed bool
	}{
		{"93.184.216.34", true, true},
		{"2606:2800:220:1:248:1893:25c8:1946", true, true},
		{"127.0.0.1", false, true},
		{"127.0.0.2", false, false},
		{"::1", false, false},
		{"10.0.0.1", false, false},
		{"10.20.3.4", false, true},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false}, // the cloud metadata service
		{"fe80::1", false, false},
		{"fc00::1", false, false},
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"::ffff:10.0.0.1", false, false}, // IPv4-mapped
		{"::ffff:127.0.0.1", false, true},
		{"2002:a00:1::1", false, false},    // 6to4 of 10.0.0.1
		{"2001:0:a00:1::1", false, false},  // Teredo
		{"::a00:1", false, false},          // IPv4-compatible 10.0.0.1
		{"64:ff9b:1::a00:1", false, false}, // local-use NAT64
		{"fec0::1", false, false},          // site-local
	} {
		a := netip.MustParseAddr(c.addr)
		if got := none.Allowed(a); got != c.none {
			t.Errorf("%s without allowed networks: %v, want %v", c.addr, got, c.none)
		}
		if got := office.Allowed(a); got != c.allowed {
			t.Errorf("%s with 10.20.0.0/16,127.0.0.1/32: %v, want %v", c.addr, got, c.allowed)
		}
	}
	if _, err := ParseAllowNets("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR was taken")
	}
	ctx := context.Background()
	for _, u := range []string{"ftp://93.184.216.34/x", "http://127.0.0.1:8080/x", "http://[::1]/x", "http://10.1.2.3/x",
		"http://169.254.169.254/latest/meta-data", "http://localhost/x", "/relative", "http:///x"} {
		if err := none.Check(ctx, u); jaego.CodeOf(err) != jaego.CodeTargetRefused {
			t.Errorf("%s: %v, want webhook_target_refused", u, err)
		}
	}
	if err := none.Check(ctx, "https://93.184.216.34/hook"); err != nil {
		t.Errorf("a public address: %v", err)
	}
	if err := none.Control("tcp4", "127.0.0.1:80", nil); err == nil {
		t.Error("the dialer's check let loopback through")
	}
	if err := AllowLoopback().Control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("dev's rule refused loopback: %v", err)
	}
}

func change(typ inventory.EventType, delta, onHand, reserved, safety, version int64) inventory.Change {
	return inventory.Change{Store: "S1", SKU: "K1", Type: typ, Delta: delta, OnHand: onHand, Reserved: reserved, Safety: safety, Version: version}
}

type ledger map[int64]inventory.Change

func (l ledger) ChangeAt(_ context.Context, _, _ string, v int64) (inventory.Change, bool, error) {
	c, ok := l[v]
	return c, ok, nil
}

// TestStockLevels: a scripted sequence that crosses low_stock (5) down and up, to 0 and
// back, gives exactly the expected alerts; the same when judged from the middle of the
// sequence (a subscription that starts there, or a replay), where the level before a
// reserve, release or set_safety comes from the ledger.
func TestStockLevels(t *testing.T) {
	seq := []inventory.Change{
		change(inventory.Receipt, 10, 10, 0, 0, 1),   // 0 → 10: back_in
		change(inventory.Sale, -3, 7, 0, 0, 2),       // 10 → 7
		change(inventory.Sale, -2, 5, 0, 0, 3),       // 7 → 5: low
		change(inventory.Sale, -1, 4, 0, 0, 4),       // 5 → 4: still low, nothing
		change(inventory.Receipt, 1, 5, 0, 0, 5),     // 4 → 5: not above 5, nothing
		change(inventory.Receipt, 3, 8, 0, 0, 6),     // 5 → 8: above again
		change(inventory.Reserve, 0, 8, 4, 0, 7),     // 8 → 4: low
		change(inventory.Reserve, 0, 8, 8, 0, 8),     // 4 → 0: out
		change(inventory.Release, 0, 8, 6, 0, 9),     // 0 → 2: back_in
		change(inventory.SetSafety, 0, 8, 6, 2, 10),  // 2 → 0: out
		change(inventory.Fulfill, -6, 2, 0, 2, 11),   // 0 → 0
		change(inventory.Adjust, 10, 12, 0, 2, 12),   // 0 → 10: back_in
		change(inventory.Set, -12, 0, 0, 2, 13),      // 10 → 0: low and out
		change(inventory.SetSafety, 0, 0, 0, 0, 14),  // 0 → 0
		change(inventory.Set, 3, 3, 0, 0, 15),        // 0 → 3: back_in (not low: it came from below)
		change(inventory.Receipt, 10, 13, 0, 0, 16),  // 3 → 13
		change(inventory.Release, 0, 13, 0, 0, 17),   // (a release of nothing held is refused; kept to test the ledger path)
		change(inventory.SetSafety, 0, 13, 0, 9, 18), // 13 → 4: low
	}
	want := []string{"1 stock.back_in", "3 stock.low", "7 stock.low", "8 stock.out", "9 stock.back_in", "10 stock.out",
		"12 stock.back_in", "13 stock.low", "13 stock.out", "15 stock.back_in", "18 stock.low"}
	sub := Subscription{Events: []string{StockLow, StockOut, StockBackIn}, LowStock: 5}
	l := ledger{}
	for _, c := range seq {
		l[c.Version] = c
	}
	judgeFrom := func(from int, prior PriorReader) []string {
		j := newJudge(prior)
		var got []string
		for _, c := range seq[from:] {
			alerts, err := j.judge(context.Background(), sub, c)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range alerts {
				got = append(got, strconv.FormatInt(a.Change.Version, 10)+" "+a.Type)
			}
		}
		return got
	}
	if got := judgeFrom(0, nil); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("alerts\n got %v\nwant %v", got, want)
	}
	for from := range seq {
		var tail []string
		for _, w := range want {
			if v, _, _ := strings.Cut(w, " "); mustAtoi(v) > from {
				tail = append(tail, w)
			}
		}
		if got := judgeFrom(from, l); strings.Join(got, ",") != strings.Join(tail, ",") {
			t.Errorf("judged from change %d\n got %v\nwant %v", from+1, got, tail)
		}
	}
	// Without the ledger, a reserve that leaves 0 is still known to be a stock.out.
	if got := judgeFrom(7, nil); len(got) == 0 || got[0] != "8 stock.out" {
		t.Errorf("from the 8th change without a ledger: %v", got)
	}
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestNormalize: defaults, and a clear error for every bad field.
func TestNormalize(t *testing.T) {
	s := Subscription{URL: "https://example.com/h", Stores: []string{"S2", "S1", "S2"}}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if s.Batch != DefaultSize || s.Status != Active || len(s.Events) != 1 || s.Events[0] != StockChanged || strings.Join(s.Stores, ",") != "S1,S2" {
		t.Fatalf("normalized: %+v", s)
	}
	for field, bad := range map[string]Subscription{
		"url":       {URL: "https://user:pw@example.com/h"},
		"events":    {URL: "https://example.com/h", Events: []string{"stock.exploded"}},
		"batch":     {URL: "https://example.com/h", Batch: MaxBatch + 1},
		"low_stock": {URL: "https://example.com/h", LowStock: -1},
		"status":    {URL: "https://example.com/h", Status: Failing},
		"store":     {URL: "https://example.com/h", Stores: []string{"bad store"}},
	} {
		var e *jaego.Error
		if err := bad.Normalize(); !errors.As(err, &e) || e.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestBackoff: every wait is within [d/2, d] of RetryMin doubling up to RetryMax.
func TestBackoff(t *testing.T) {
	r := &run{d: NewDispatcher(Options{RetryMin: 5 * time.Second, RetryMax: time.Hour})}
	for n := 1; n <= 30; n++ {
		d := min(time.Hour, 5*time.Second<<min(n-1, 20))
		for range 100 {
			if got := r.backoff(n); got < d/2 || got > d {
				t.Fatalf("attempt %d: waited %s, want within [%s, %s]", n, got, d/2, d)
			}
		}
	}
}

// TestParseStart: "now", a time, a cursor; a future time is refused.
func TestParseStart(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if s, err := ParseStart("", now); err != nil || !s.Now {
		t.Fatalf("empty: %+v %v", s, err)
	}
	if s, err := ParseStart("2026-12-01T10:00:00Z", now); err != nil || !s.Time.Equal(now.Add(-24*time.Hour)) {
		t.Fatalf("a time: %+v %v", s, err)
	}
	// A cursor of an earlier jaego (JSON), and binary ones: base64url has '-', and a cursor
	// whose fifth character is one is still a cursor.
	for _, c := range []string{"eyJmIjox", "AYCAgP-ABAEBAgMEAAAA", "AYCA-IABAgECAwQAAAAA"} {
		if s, err := ParseStart(c, now); err != nil || s.Cursor != c {
			t.Fatalf("a cursor: %+v %v", s, err)
		}
	}
	if _, err := ParseStart("2027-01-01T00:00:00Z", now); err == nil {
		t.Fatal("a future time was taken")
	}
	if _, err := ParseStart("2026-13-01T00:00:00Z", now); err == nil {
		t.Fatal("a malformed time was taken")
	}
}

// TestLedgerPosition: a ledger position survives its text.
func TestLedgerPosition(t *testing.T) {
	l := ledgerPos{from: time.UnixMilli(1000), until: time.UnixMilli(2000), after: "1500-3/4/20261202", passed: "eyJ"}
	got, err := parseLedger(l.position())
	if err != nil || got != l {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if l.position().Cursor() != "" || Position("eyJ").Cursor() != "eyJ" {
		t.Fatal("Cursor of a ledger position must be empty, of a feed cursor itself")
	}
	if _, err := parseLedger("l:x"); err == nil {
		t.Fatal("a malformed position was taken")
	}
}

// TestChangedBody: a stock.changed body is what encoding/json makes of the envelope, for a
// feed cursor (kept) and a ledger position (no cursor), with names that need escaping.
func TestChangedBody(t *testing.T) {
	at := time.Date(2026, 12, 3, 8, 1, 2, 345_000_000, time.FixedZone("KST", 9*3600))
	changes := []inventory.Change{
		{ID: "1764720000000-0", Store: "S001", SKU: "8809461234567", Type: inventory.Sale, Delta: -1, OnHand: 4, Version: 7, EventID: "pos-1", At: at},
		{ID: "1764720000001-3", Store: `S<"2">`, SKU: "é", Type: inventory.Receipt, Delta: 5, OnHand: 5, Reserved: 1, Safety: 2, Version: 1, EventID: "r\n", At: at.UTC()},
	}
	now := at.Add(time.Second)
	for _, after := range []Position{"c1.abc-_", "l:1:2:1764720000001-3|"} {
		m := changedMessage("msg_x_1", changes, after, now)
		type data struct {
			Changes []inventory.Change `json:"changes"`
			Cursor  string             `json:"cursor,omitempty"`
		}
		want, err := json.Marshal(envelope{Type: StockChanged, Timestamp: now.UTC(), Data: data{Changes: changes, Cursor: after.Cursor()}})
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != string(want) {
			t.Errorf("after %s:\n got %s\nwant %s", after, m.Body, want)
		}
		if m.Changes != 2 || !m.First.Equal(at) || m.After != after {
			t.Errorf("message %+v", m)
		}
	}
}

// TestBacklogGroups: while the reader has more at hand, a deliverer hands its messages on
// (to be kept pending, then sent) in groups of 1, 2, 4, … up to window, so that a backlog's
// first message goes out as soon as it is formed; a batch of a live feed goes whole at its
// end (one pend for it); catching up starts the doubling again, and only catching up.
func TestBacklogGroups(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &run{d: NewDispatcher(Options{Fill: time.Hour}), id: "wh_groups", sub: Subscription{URL: "https://example.com/h", Batch: 1}, group: 1}
	if err := r.sub.Normalize(); err != nil {
		t.Fatal(err)
	}
	batches, handoffs, pending := make(chan batch), make(chan handoff), make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.follow(ctx, "p", batches, handoffs, pending) }()
	backlog := func(n int, more bool) batch {
		cs := make([]inventory.Change, n)
		for i := range cs {
			cs[i] = inventory.Change{ID: strconv.Itoa(i), EventID: "e" + strconv.Itoa(i), Store: "S1", SKU: "K1", At: time.UnixMilli(int64(i))}
		}
		return batch{changes: cs, start: "p", end: "p-end", more: more, at: func(i int) (Position, error) { return Position("p" + strconv.Itoa(i)), nil }}
	}
	sizes := func(n int) []int {
		var got []int
		for total := 0; total < n; {
			h := <-handoffs
			if len(h.msgs) == 0 {
				continue // a position alone
			}
			got = append(got, len(h.msgs))
			total += len(h.msgs)
		}
		return got
	}
	// 300 changes of a backlog, one a message, the feed holding more: groups doubling to
	// window; the 45 left go when the next page does not come.
	batches <- backlog(300, true)
	if got, want := sizes(300), []int{1, 2, 4, 8, 16, 32, 64, 64, 64, 45}; !slices.Equal(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	// A batch of a live feed (nothing more at hand): handed on whole.
	batches <- backlog(10, false)
	if got, want := sizes(10), []int{10}; !slices.Equal(got, want) {
		t.Fatalf("a live batch went as %v, want %v", got, want)
	}
	// Caught up: the next backlog starts at 1 again; a page of it that ends with nothing
	// held does not (the next page goes on at 8).
	batches <- backlog(7, true)
	if got, want := sizes(7), []int{1, 2, 4}; !slices.Equal(got, want) {
		t.Fatalf("after catching up, groups %v, want %v", got, want)
	}
	batches <- backlog(8, true)
	if got, want := sizes(8), []int{8}; !slices.Equal(got, want) {
		t.Fatalf("the backlog's next page went as %v, want %v", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
