package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/testenv"
)

// webhookKey writes a webhook key file for a test and answers its path.
func webhookKey(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "webhook.key")
	if err := os.WriteFile(p, []byte("test-webhook-key-0123456789abcdefghijklmnop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// subscribe makes a webhook on api and tells the receiver its secret; it answers the id
// and the secret.
func subscribe(t *testing.T, api string, r *testenv.Receiver, body string) (string, string) {
	t.Helper()
	a := call(t, "POST", api+"/v1/admin/webhooks", body)
	if a.status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", a.status, a.body)
	}
	secret, _ := a.body["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || a.body["status"] != "active" {
		t.Fatalf("create webhook answered %v", a.body)
	}
	if r != nil {
		r.Control(map[string]any{"secrets": []string{secret}})
	}
	return a.body["id"].(string), secret
}

// changesOf are the changes of the receiver's stock.changed messages, in arrival order.
func changesOf(t *testing.T, msgs []testenv.ReceivedMessage) []inventory.Change {
	t.Helper()
	var out []inventory.Change
	for _, m := range msgs {
		if m.Type != "stock.changed" {
			continue
		}
		var d struct {
			Changes []inventory.Change `json:"changes"`
		}
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d.Changes...)
	}
	return out
}

// checkOncePerItemInOrder checks that changes hold every version of every item exactly
// once and in order (each item's versions 1, 2, 3, …, as its events were applied), and
// want changes in all.
func checkOncePerItemInOrder(t *testing.T, changes []inventory.Change, want int) {
	t.Helper()
	next := map[string]int64{}
	bad := 0
	for _, c := range changes {
		k := c.Store + "/" + c.SKU
		if c.Version != next[k]+1 {
			if bad++; bad <= 5 {
				t.Errorf("%s: version %d after %d (a change twice, missing or out of order)", k, c.Version, next[k])
			}
		}
		next[k] = c.Version
	}
	if len(changes) != want {
		t.Errorf("the receiver holds %d changes, want %d", len(changes), want)
	}
}

type alertSeen struct {
	Type      string
	Store     string
	SKU       string
	Available int64
	Version   int64
}

func alertsOf(t *testing.T, msgs []testenv.ReceivedMessage) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		if m.Type == "stock.changed" {
			continue
		}
		var d struct {
			Store     string           `json:"store"`
			SKU       string           `json:"sku"`
			Available int64            `json:"available"`
			Threshold int64            `json:"threshold"`
			Change    inventory.Change `json:"change"`
		}
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s/%s v%d available=%d", m.Type, d.Store, d.SKU, d.Change.Version, d.Available))
	}
	return out
}

// byItem orders alerts by item, keeping each item's in the order they came.
func byItem(alerts []string) []string {
	out := slices.Clone(alerts)
	slices.SortStableFunc(out, func(a, b string) int { return strings.Compare(strings.Fields(a)[1], strings.Fields(b)[1]) })
	return out
}

func ev(id string, typ inventory.EventType, store, sku string, qty int64) string {
	return fmt.Sprintf(`{"event_id":%q,"type":%q,"store":%q,"sku":%q,"qty":%d}`, id, typ, store, sku, qty)
}

// TestWebhooksEndToEnd: jaego dev delivers to a receiver that checks every signature with the
// Standard Webhooks reference library: every change once and in order, the stock-level
// alerts of a scripted sequence exactly, both secrets valid after a rotation, nothing while
// paused and everything after, a delivery log, a test message; bad subscriptions get
// problems and change nothing, and a redirect is not followed.
func TestWebhooksEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	recv := testenv.StartReceiver(t)
	p := startJaego(t, bin, "dev", "--http", "127.0.0.1:0", "--log-level", "warn")
	api := p.api

	for _, bad := range []struct{ body, code string }{
		{`{"url":"http://10.0.0.1/hook"}`, "webhook_target_refused"},
		{`{"url":"http://169.254.169.254/latest"}`, "webhook_target_refused"},
		{`{"url":"ftp://example.com/x"}`, "webhook_target_refused"},
		{`{"url":"` + recv.URL + `","events":["stock.exploded"]}`, "invalid_input"},
		{`{"url":"` + recv.URL + `","batch":5000}`, "invalid_input"},
		{`{"url":"` + recv.URL + `","from":"2999-01-01T00:00:00Z"}`, "invalid_input"},
		{`{"url":"` + recv.URL + `","from":"not-a-cursor"}`, "invalid_cursor"},
		{`{"url":"` + recv.URL + `","surprise":1}`, "invalid_json"},
	} {
		if a := call(t, "POST", api+"/v1/admin/webhooks", bad.body); a.status/100 != 4 || a.body["code"] != bad.code {
			t.Errorf("%s: %d %v, want code %s", bad.body, a.status, a.body, bad.code)
		}
	}
	if a := call(t, "GET", api+"/v1/admin/webhooks", ""); len(a.body["webhooks"].([]any)) != 0 {
		t.Fatalf("refused subscriptions were kept: %v", a.body)
	}

	id, oldSecret := subscribe(t, api, recv, `{"url":"`+recv.URL+`","events":["stock.changed","stock.low","stock.out","stock.back_in"],"low_stock":5,"batch":7,"stores":["W1","W2"]}`)
	// A redirecting endpoint: its messages fail, and the redirect's target never hears of them.
	var redirected atomic.Int64
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, recv.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	rid, _ := subscribe(t, api, nil, `{"url":"`+redirect.URL+`/hook","stores":["W1"]}`)

	// The scripted item W1/A crosses 5 down and up, to 0 and back; W2/B and W3/C (not
	// subscribed) change in between.
	script := []string{
		ev("a1", inventory.Receipt, "W1", "A", 10), // 0 → 10: back_in
		ev("b1", inventory.Receipt, "W2", "B", 3),  // back_in
		ev("c1", inventory.Receipt, "W3", "C", 3),  // another store: nothing
		ev("a2", inventory.Sale, "W1", "A", 5),     // 10 → 5: low
		ev("a3", inventory.Sale, "W1", "A", 1),     // 5 → 4
		ev("a4", inventory.Receipt, "W1", "A", 4),  // 4 → 8
		ev("a5", inventory.Reserve, "W1", "A", 8),  // 8 → 0: low, out
		ev("a6", inventory.Release, "W1", "A", 2),  // 0 → 2: back_in
		ev("b2", inventory.Sale, "W2", "B", 3),     // 3 → 0: out
	}
	for i := 0; i < 40; i++ { // and enough changes for several full batches
		script = append(script, ev(fmt.Sprintf("w%d", i), inventory.Receipt, "W2", fmt.Sprintf("S%d", i%6), 1))
	}
	if a := call(t, "POST", api+"/v1/events", `{"events":[`+strings.Join(script, ",")+`]}`); a.status != 200 {
		t.Fatalf("events: %d %v", a.status, a.body)
	}
	// Alerts come in feed order, which orders each item's changes (not items among each other).
	wantAlerts := []string{"stock.back_in W1/A v1 available=10", "stock.low W1/A v2 available=5",
		"stock.low W1/A v5 available=0", "stock.out W1/A v5 available=0", "stock.back_in W1/A v6 available=2",
		"stock.back_in W2/B v1 available=3", "stock.out W2/B v2 available=0"}
	for i := range 6 { // the first receipt of each: 0 → 1
		wantAlerts = append(wantAlerts, fmt.Sprintf("stock.back_in W2/S%d v1 available=1", i))
	}
	var st testenv.ReceiverState
	testenv.Eventually(t, "every change and alert at the receiver", time.Minute, func() bool {
		st = recv.State()
		return len(changesOf(t, st.Messages)) >= 48 && len(alertsOf(t, st.Messages)) >= len(wantAlerts)
	}, func() string {
		return fmt.Sprintf("%d messages, %d bad signatures", len(st.Messages), st.BadSignatures)
	})
	checkOncePerItemInOrder(t, changesOf(t, st.Messages), 48)
	if got := byItem(alertsOf(t, st.Messages)); strings.Join(got, "\n") != strings.Join(wantAlerts, "\n") {
		t.Errorf("alerts\n got %q\nwant %q", got, wantAlerts)
	}
	for _, m := range st.Messages {
		if m.Type == "stock.changed" && len(changesOf(t, []testenv.ReceivedMessage{m})) > 7 {
			t.Errorf("message %s carries more than batch (7) changes", m.ID)
		}
	}
	if st.BadSignatures != 0 {
		t.Fatalf("%d requests failed the reference library's verification: %s", st.BadSignatures, st.LastBad)
	}

	// Rotation: a receiver that knows only the new secret, then only the old one, verifies
	// every message during the overlap.
	a := call(t, "POST", api+"/v1/admin/webhooks/"+id+"/rotate-secret", "")
	if a.status != 200 || !strings.HasPrefix(fmt.Sprint(a.body["secret"]), "whsec_") {
		t.Fatalf("rotate: %d %v", a.status, a.body)
	}
	recv.Control(map[string]any{"secrets": []string{a.body["secret"].(string)}})
	if a := call(t, "POST", api+"/v1/events", `{"events":[`+ev("r1", inventory.Receipt, "W1", "R", 1)+`]}`); a.status != 200 {
		t.Fatal(a.body)
	}
	testenv.Eventually(t, "a change after the rotation", time.Minute, func() bool { return len(changesOf(t, recv.State().Messages)) == 49 })
	recv.Control(map[string]any{"secrets": []string{oldSecret}})
	if a := call(t, "POST", api+"/v1/events", `{"events":[`+ev("r2", inventory.Receipt, "W1", "R", 1)+`]}`); a.status != 200 {
		t.Fatal(a.body)
	}
	testenv.Eventually(t, "a change verified with the old secret", time.Minute, func() bool { return len(changesOf(t, recv.State().Messages)) == 50 })

	// Pause: nothing is delivered; resume: everything made meanwhile is.
	if a := call(t, "PATCH", api+"/v1/admin/webhooks/"+id, `{"status":"paused"}`); a.status != 200 || a.body["status"] != "paused" {
		t.Fatalf("pause: %d %v", a.status, a.body)
	}
	if a := call(t, "POST", api+"/v1/events", `{"events":[`+ev("p1", inventory.Receipt, "W1", "P", 1)+`,`+ev("p2", inventory.Receipt, "W1", "P", 1)+`]}`); a.status != 200 {
		t.Fatal(a.body)
	}
	// The redirecting subscription's messages show what was tried meanwhile (and that the
	// deliverers ran after the pause).
	testenv.Eventually(t, "failed attempts of the redirecting subscription", time.Minute, func() bool {
		d := call(t, "GET", api+"/v1/admin/webhooks/"+rid+"/deliveries?status=failed", "")
		ds, _ := d.body["deliveries"].([]any)
		return len(ds) > 0 && strings.Contains(fmt.Sprint(ds[0]), "redirects are not followed")
	})
	if n := len(changesOf(t, recv.State().Messages)); n != 50 {
		t.Fatalf("a paused subscription delivered: %d changes", n)
	}
	if a := call(t, "PATCH", api+"/v1/admin/webhooks/"+id, `{"status":"active"}`); a.status != 200 {
		t.Fatal(a.body)
	}
	testenv.Eventually(t, "the changes made while paused", time.Minute, func() bool { return len(changesOf(t, recv.State().Messages)) == 52 })
	st = recv.State()
	checkOncePerItemInOrder(t, changesOf(t, st.Messages), 52)
	if st.BadSignatures != 0 {
		t.Fatalf("%d bad signatures after the rotation: %s", st.BadSignatures, st.LastBad)
	}
	if got := redirected.Load(); got == 0 {
		t.Fatal("the redirecting endpoint was never tried")
	}

	a = call(t, "GET", api+"/v1/admin/webhooks/"+id+"/deliveries?limit=3", "")
	if ds, _ := a.body["deliveries"].([]any); a.status != 200 || len(ds) != 3 || a.body["next_cursor"] == nil {
		t.Fatalf("delivery log: %d %v", a.status, a.body)
	}
	// A delivery is written within 2.5 s (with the next pend, or alone after that).
	var one answer
	testenv.Eventually(t, "the last delivery written", 15*time.Second, func() bool {
		one = call(t, "GET", api+"/v1/admin/webhooks/"+id, "")
		return one.body["lag_seconds"] == 0.0 && one.body["pending_messages"] == 0.0
	})
	if one.body["last_success"] == nil || one.body["secret"] != nil {
		t.Fatalf("one subscription: %v", one.body)
	}
	if a := call(t, "POST", api+"/v1/admin/webhooks/"+id+"/test", ""); a.status != 200 || a.body["http_status"] != 204.0 {
		t.Fatalf("test message: %d %v", a.status, a.body)
	}
	if a := call(t, "POST", api+"/v1/admin/webhooks/"+id+"/replay", `{"from":"yesterday"}`); a.status != 400 {
		t.Fatalf("replay from a bad time: %d %v", a.status, a.body)
	}
	req, _ := http.NewRequest("DELETE", api+"/v1/admin/webhooks/"+rid, nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("delete: %v %v", res, err)
	}
	if a := call(t, "GET", api+"/v1/admin/webhooks/"+rid, ""); a.status != 404 {
		t.Fatalf("get after delete: %d", a.status)
	}
	metrics := scrape(t, context.Background(), api+"/metrics", "")
	for _, m := range []string{`jaego_webhook_deliveries_total{outcome="delivered"}`, `jaego_webhook_deliveries_total{outcome="failed"}`, "jaego_webhook_partitions 16", "jaego_webhook_pend_seconds_count"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestWebhooksWithoutAllowNet: jaego serve refuses loopback targets unless allowed, and
// without a key file its webhook routes say what is missing.
func TestWebhooksWithoutAllowNet(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	s := newCopyStack(t)
	p := s.serve(t, bin, "--webhook-key-file", webhookKey(t))
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://localhost:9/hook", "http://10.1.1.1/hook", "http://192.168.0.1/hook"} {
		if a := call(t, "POST", p.api+"/v1/admin/webhooks", `{"url":"`+u+`"}`); a.status != 422 || a.body["code"] != "webhook_target_refused" {
			t.Errorf("%s: %d %v", u, a.status, a.body)
		}
	}
	off := s.serve(t, bin)
	if a := call(t, "GET", off.api+"/v1/admin/webhooks", ""); a.status != 503 || a.body["code"] != "webhooks_disabled" ||
		!strings.Contains(fmt.Sprint(a.body["detail"]), "--webhook-key-file") {
		t.Errorf("without a key: %d %v", a.status, a.body)
	}
}

// TestWebhooksExactlyOnce is issue 24's delivery test: 100k changes from 16 writers, a
// receiver that fails 30% of requests, answers slowly and is down for a minute, and jaego
// serve SIGKILLed twice while it delivers. At the end the receiver, deduplicating by
// webhook-id, holds every change once, in feed order per store × SKU.
func TestWebhooksExactlyOnce(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	s := newCopyStack(t)
	recv := testenv.StartReceiver(t)
	key := webhookKey(t)
	serve := func() *jaegoProc {
		return s.serve(t, bin, "--webhook-key-file", key, "--webhook-allow-net", "127.0.0.1/32",
			"--webhook-retry-min", "50ms", "--webhook-retry-max", "2s", "--lock-watchdog", "1s")
	}
	p := serve()
	id, _ := subscribe(t, p.api, recv, `{"url":"`+recv.URL+`","batch":200}`)
	recv.Control(map[string]any{"fail_rate": 0.3, "slow_ms": 50})

	const writers, perWriter = 16, 6250 // 100k changes
	var written atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < perWriter; i += 250 {
				batch := make([]inventory.Event, 0, 250)
				for j := i; j < i+250; j++ {
					batch = append(batch, inventory.Event{EventID: fmt.Sprintf("x%d-%d", w, j), Type: inventory.Receipt,
						Store: fmt.Sprintf("X%02d", w), SKU: fmt.Sprintf("K%d", j%50), Qty: 1})
				}
				for ctx.Err() == nil {
					if res, err := s.store.Apply(ctx, batch); err == nil {
						for _, r := range res {
							if r.Status == inventory.Applied {
								written.Add(1)
							}
						}
						break
					}
				}
			}
		})
	}
	// Kill serve twice while it delivers, the receiver down for a minute between.
	testenv.Eventually(t, "deliveries under way", time.Minute, func() bool { return len(recv.State().Messages) > 20 })
	p.kill(t)
	p = serve()
	testenv.Eventually(t, "deliveries after the first kill", time.Minute, func() bool { return len(recv.State().Messages) > 150 })
	recv.Control(map[string]any{"down_ms": 60_000})
	testenv.Eventually(t, "the receiver refusing while down", time.Minute, func() bool { return recv.State().Dropped > 3 })
	p.kill(t)
	p = serve()
	wg.Wait()
	if written.Load() != writers*perWriter {
		t.Fatalf("%d events applied, want %d", written.Load(), writers*perWriter)
	}
	var st testenv.ReceiverState
	testenv.Eventually(t, "every change at the receiver", 5*time.Minute, func() bool {
		st = recv.State()
		return len(changesOf(t, st.Messages)) >= writers*perWriter
	}, func() string { return fmt.Sprintf("%d changes", len(changesOf(t, st.Messages))) })
	checkOncePerItemInOrder(t, changesOf(t, st.Messages), writers*perWriter)
	if st.BadSignatures != 0 || st.Failed == 0 || st.Dropped == 0 {
		t.Errorf("bad signatures %d (want 0), failed %d and dropped %d (want some of each)", st.BadSignatures, st.Failed, st.Dropped)
	}
	a := call(t, "GET", p.api+"/v1/admin/webhooks/"+id, "")
	t.Logf("%d messages, %d requests (%d failed, %d unanswered); subscription: %v", len(st.Messages), st.Received, st.Failed, st.Dropped, a.body)
}

// TestWebhooksReplayAndLevels, on two jaego serve instances sharing Redis and PostgreSQL
// (one delivers each subscription): a subscription from a time older than the Redis
// retention gets the ledger's changes of that time exactly, then the live ones; stock-level
// alerts of a scripted sequence come exactly once, and a replay gives the same alerts again;
// 1,000 subscriptions add no Redis connection.
func TestWebhooksReplayAndLevels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildJaego(t)
	s := newCopyStack(t)
	// The ledger of three hours ago, older than the Redis retention (1h) below: what a
	// projector copied back then, of changes Redis no longer has.
	old := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	var oldChanges []inventory.Change
	for i := range 30 {
		at := old.Add(time.Duration(i) * time.Second)
		oldChanges = append(oldChanges, inventory.Change{ID: fmt.Sprintf("%d-0/%d/%s", at.UnixMilli(), i%16, at.UTC().Format("20060102")),
			Store: "L1", SKU: fmt.Sprintf("OLD%d", i%3), Type: inventory.Receipt, Delta: 1, OnHand: int64(i/3 + 1), Version: int64(i/3 + 1),
			EventID: fmt.Sprintf("old%d", i), At: at.UTC()})
	}
	if _, err := s.copy.Claim(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.copy.Commit(ctx, 0, inventory.Projection{Changes: oldChanges}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.MarkEpoch(ctx, true); err != nil { // the Redis of that deployment, whole
		t.Fatal(err)
	}
	key := webhookKey(t)
	serve := func() *jaegoProc {
		return s.serve(t, bin, "--webhook-key-file", key, "--webhook-allow-net", "127.0.0.1/32", "--changes-retention", "1h",
			"--webhook-retry-min", "50ms", "--webhook-retry-max", "1s")
	}
	a, b := serve(), serve()
	s.bootstrapped(t)
	changed, levels := testenv.StartReceiver(t), testenv.StartReceiver(t)
	subscribe(t, a.api, changed, `{"url":"`+changed.URL+`","from":"`+old.Add(-time.Minute).Format(time.RFC3339Nano)+`","batch":10}`)
	created := time.Now()
	lid, levelsSecret := subscribe(t, b.api, levels, `{"url":"`+levels.URL+`","events":["stock.low","stock.out","stock.back_in"],"low_stock":3,"stores":["W1"]}`)

	testenv.Eventually(t, "the ledger's changes", time.Minute, func() bool { return len(changesOf(t, changed.State().Messages)) >= 30 })
	script := []string{
		ev("a1", inventory.Receipt, "W1", "A", 5), // 0 → 5: back_in
		ev("a2", inventory.Sale, "W1", "A", 2),    // 5 → 3: low
		ev("a3", inventory.Sale, "W1", "A", 1),    // 3 → 2
		ev("a4", inventory.Receipt, "W1", "A", 4), // 2 → 6
		ev("a5", inventory.Reserve, "W1", "A", 6), // 6 → 0: low, out
		ev("a6", inventory.Release, "W1", "A", 6), // 0 → 6: back_in
		ev("b1", inventory.Receipt, "W2", "B", 5), // another store
	}
	for _, e := range script { // one request each, half to each instance
		api := a.api
		if strings.Contains(e, `"a2"`) || strings.Contains(e, `"a4"`) || strings.Contains(e, `"a6"`) {
			api = b.api
		}
		if r := call(t, "POST", api+"/v1/events", `{"events":[`+e+`]}`); r.status != 200 {
			t.Fatalf("%s: %d %v", e, r.status, r.body)
		}
	}
	want := []string{"stock.back_in W1/A v1 available=5", "stock.low W1/A v2 available=3", "stock.low W1/A v5 available=0",
		"stock.out W1/A v5 available=0", "stock.back_in W1/A v6 available=6"}
	testenv.Eventually(t, "the alerts", time.Minute, func() bool { return len(alertsOf(t, levels.State().Messages)) >= len(want) })
	testenv.Eventually(t, "the live changes", time.Minute, func() bool { return len(changesOf(t, changed.State().Messages)) >= 37 })
	got := changesOf(t, changed.State().Messages)
	checkOncePerItemInOrder(t, got, 37)
	for i, c := range got[:30] {
		if c.ID != oldChanges[i].ID || c.Version != oldChanges[i].Version || !c.At.Equal(oldChanges[i].At) {
			t.Fatalf("change %d from the ledger: %+v, want %+v", i, c, oldChanges[i])
		}
	}

	// A replay from the subscription's start gives the same alerts again, once.
	if r := call(t, "POST", b.api+"/v1/admin/webhooks/"+lid+"/replay", `{"from":"`+created.Add(-time.Second).Format(time.RFC3339Nano)+`"}`); r.status != 202 {
		t.Fatalf("replay: %d %v", r.status, r.body)
	}
	testenv.Eventually(t, "the replayed alerts", time.Minute, func() bool { return len(alertsOf(t, levels.State().Messages)) >= 2*len(want) })
	if got := alertsOf(t, levels.State().Messages); strings.Join(got, "\n") != strings.Join(append(want, want...), "\n") {
		t.Fatalf("alerts, then their replay\n got %q\nwant %q twice", got, want)
	}

	// 1,000 subscriptions (filtered to a store nobody writes) cost no Redis connection: they
	// share each instance's one read of the feed and the client's connections.
	before := redisClients(t, s.client)
	for i := range 1000 {
		if r := call(t, "POST", a.api+"/v1/admin/webhooks", `{"url":"`+changed.URL+`","stores":["NONE"]}`); r.status != 201 {
			t.Fatalf("subscription %d: %d %v", i, r.status, r.body)
		}
	}
	_, last := subscribe(t, a.api, nil, `{"url":"`+levels.URL+`","stores":["W9"]}`) // the last one made: when it delivers, all run
	levels.Control(map[string]any{"secrets": []string{levelsSecret, last}})
	n := len(levels.State().Messages)
	if r := call(t, "POST", a.api+"/v1/events", `{"events":[`+ev("z1", inventory.Receipt, "W9", "Z", 1)+`]}`); r.status != 200 {
		t.Fatal(r.body)
	}
	testenv.Eventually(t, "a delivery with 1,002 subscriptions", time.Minute, func() bool { return len(levels.State().Messages) > n })
	after := redisClients(t, s.client)
	t.Logf("Redis clients: %d before the 1,000 subscriptions, %d after", before, after)
	if after > before+2 {
		t.Errorf("1,000 subscriptions took %d more Redis connections", after-before)
	}
}

// TestWebhookTracing: with tracing on, every attempt is a client span, and the receiver
// gets its context in a traceparent header (the last hop of design §16).
func TestWebhookTracing(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	jaeger := testenv.StartJaeger(t)
	recv := testenv.StartReceiver(t)
	p := startJaegoEnv(t, bin, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.OTLPHTTP, "OTEL_SERVICE_NAME=webhooks-under-test",
		"OTEL_BSP_SCHEDULE_DELAY=100"}, "dev", "--http", "127.0.0.1:0", "--log-level", "warn")
	id, _ := subscribe(t, p.api, recv, `{"url":"`+recv.URL+`"}`)
	if a := call(t, "POST", p.api+"/v1/events", `{"events":[`+ev("t1", inventory.Receipt, "T1", "A", 1)+`]}`); a.status != 200 {
		t.Fatal(a.body)
	}
	var msg testenv.ReceivedMessage
	testenv.Eventually(t, "the traced delivery", time.Minute, func() bool {
		st := recv.State()
		if len(st.Messages) == 0 {
			return false
		}
		msg = st.Messages[0]
		return true
	})
	parts := strings.Split(msg.Traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || parts[3] != "01" {
		t.Fatalf("traceparent %q: want a sampled W3C trace context", msg.Traceparent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spans := waitTrace(t, ctx, jaeger, parts[1], "the delivery span", func(spans []testenv.Span) bool { return findSpan(spans, "webhook deliver") != nil })
	s := findSpan(spans, "webhook deliver")
	if s.SpanID != parts[2] || s.Tags["jaego.webhook"] != id || s.Tags["jaego.message_id"] != msg.ID || s.Tags["http.response.status_code"] != "204" {
		t.Errorf("delivery span %+v: want span %s of subscription %s, message %s, status 204", s, parts[2], id, msg.ID)
	}
}

// TestWebhookBacklogEndingAtAPage: a backlog of exactly one page of the deliveries' hub
// (1,000 changes) fills the hub's read, so more might follow at once, and the deliverer
// holds its messages for the next page to pend them together; nothing follows, and they
// still go out (held for at most webhook's gather), every change once and in order.
func TestWebhookBacklogEndingAtAPage(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	s := newCopyStack(t)
	p := s.serve(t, bin, "--webhook-key-file", webhookKey(t), "--webhook-allow-net", "127.0.0.1/32")
	s.bootstrapped(t)
	from := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	for r := range 10 {
		var evs []string
		for i := range 100 {
			evs = append(evs, ev(fmt.Sprintf("p%d-%d", r, i), inventory.Receipt, "P1", fmt.Sprintf("S%d", i%37), 1))
		}
		if a := call(t, "POST", p.api+"/v1/events", `{"events":[`+strings.Join(evs, ",")+`]}`); a.status != http.StatusOK {
			t.Fatalf("events: %d %v", a.status, a.body)
		}
	}
	rcv := testenv.StartReceiver(t)
	subscribe(t, p.api, rcv, `{"url":"`+rcv.URL+`","from":"`+from+`","batch":1000}`)
	testenv.Eventually(t, "the 1,000 changes", time.Minute, func() bool { return len(changesOf(t, rcv.State().Messages)) >= 1000 })
	checkOncePerItemInOrder(t, changesOf(t, rcv.State().Messages), 1000)
}

// TestWebhooksThroughFlush: Redis is flushed while two subscriptions are behind, one with
// its receiver down (its messages formed and pending), one paused (its changes not yet read
// from the feed), and restored as the runbook says (jaego restore while jaego serve runs):
// nothing is delivered meanwhile, and each receiver ends with every change the copy held and
// those written after the restore, each once, in order per store × SKU (the paused one's
// position is in the streams the restore writes back, with their ids).
func TestWebhooksThroughFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildJaego(t)
	s := newCopyStack(t)
	recv, paused := testenv.StartReceiver(t), testenv.StartReceiver(t)
	p := s.serve(t, bin, "--webhook-key-file", webhookKey(t), "--webhook-allow-net", "127.0.0.1/32",
		"--webhook-retry-min", "50ms", "--webhook-retry-max", "1s")
	s.bootstrapped(t)
	subscribe(t, p.api, recv, `{"url":"`+recv.URL+`","batch":50}`)
	pausedID, _ := subscribe(t, p.api, paused, `{"url":"`+paused.URL+`","batch":50}`)
	write := func(prefix string, n int) {
		t.Helper()
		for i := 0; i < n; i += 250 {
			var batch []inventory.Event
			for j := i; j < min(n, i+250); j++ {
				batch = append(batch, inventory.Event{EventID: fmt.Sprintf("%s%d", prefix, j), Type: inventory.Receipt,
					Store: fmt.Sprintf("F%d", j%7), SKU: fmt.Sprintf("K%d", j%40), Qty: 1})
			}
			res, err := s.store.Apply(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Status != inventory.Applied {
					t.Fatalf("%s: %+v", prefix, r)
				}
			}
		}
	}
	delivered := func(r *testenv.Receiver) int { return len(changesOf(t, r.State().Messages)) }
	write("a", 1500)
	s.copied(t, 1500)
	testenv.Eventually(t, "the first changes delivered", time.Minute, func() bool { return delivered(recv) > 0 && delivered(paused) > 0 })
	recv.Control(map[string]any{"down_ms": 3_600_000})
	if a := call(t, "PATCH", p.api+"/v1/admin/webhooks/"+pausedID, `{"status":"paused"}`); a.status != 200 {
		t.Fatalf("pause: %+v", a)
	}
	// Its deliverer stopped (its lag series goes with it): the changes below are not read.
	testenv.Eventually(t, "the paused subscription's deliverer stopped", time.Minute, func() bool {
		resp, err := client.Get(p.api + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return err == nil && !strings.Contains(string(b), `jaego_webhook_lag_seconds{subscription="`+pausedID+`"}`)
	})
	// afterPause: a receiver's changes of events written after the pause and the receiver's
	// fall.
	afterPause := func(r *testenv.Receiver) int {
		n := 0
		for _, c := range changesOf(t, r.State().Messages) {
			if !strings.HasPrefix(c.EventID, "a") {
				n++
			}
		}
		return n
	}
	write("b", 1500)
	s.copied(t, 3000)
	if err := s.client.Do(ctx, s.client.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the loss seen", 30*time.Second, func() bool {
		return call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] == "lost"
	})
	var out bytes.Buffer
	if err := run(ctx, []string{"jaego", "restore", "--redis", "redis://" + s.redis.Addr + "/0", "--postgres", s.pg, "--kafka", s.broker},
		func(string) string { return "" }, nil, &out, t.Output()); err != nil {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	if got, got2 := afterPause(recv), afterPause(paused); got != 0 || got2 != 0 {
		t.Fatalf("%d and %d changes written after the pause delivered while down and paused", got, got2)
	}
	recv.Control(map[string]any{"down_ms": 0})
	if a := call(t, "PATCH", p.api+"/v1/admin/webhooks/"+pausedID, `{"status":"active"}`); a.status != 200 {
		t.Fatalf("resume: %+v", a)
	}
	testenv.Eventually(t, "writes after the restore", time.Minute, func() bool {
		return call(t, "POST", p.api+"/v1/events", `{"event_id":"after-probe","type":"receipt","store":"F0","sku":"PROBE","qty":1}`).status == 200
	})
	write("c", 1000)
	const want = 1500 + 1500 + 1 + 1000
	for name, r := range map[string]*testenv.Receiver{"down": recv, "paused": paused} {
		testenv.Eventually(t, "every change at the receiver "+name, 3*time.Minute, func() bool { return delivered(r) >= want },
			func() string { return fmt.Sprintf("%d changes of %d", delivered(r), want) })
		checkOncePerItemInOrder(t, changesOf(t, r.State().Messages), want)
		if st := r.State(); st.BadSignatures != 0 {
			t.Errorf("%s: %d bad signatures", name, st.BadSignatures)
		}
	}
}

// TestWebhooksThroughPostgresFaults: while a backlog is delivered, PostgreSQL (where the
// deliveries keep their positions and pending messages) drops every connection, then hangs
// (a lock held on the pending messages' table) and drops a delivery's write waiting on it:
// the deliverer starts over, and the receiver ends with every change once, in order per
// store × SKU.
func TestWebhooksThroughPostgresFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildJaego(t)
	s := newCopyStack(t)
	recv := testenv.StartReceiver(t)
	p := s.serve(t, bin, "--webhook-key-file", webhookKey(t), "--webhook-allow-net", "127.0.0.1/32",
		"--webhook-retry-min", "50ms", "--webhook-retry-max", "1s")
	subscribe(t, p.api, recv, `{"url":"`+recv.URL+`","batch":20}`)
	recv.Control(map[string]any{"slow_ms": 20}) // a backlog of ~100 messages takes seconds
	// write applies the events [from, to), each fault followed by some: there is always
	// something left to deliver, however fast the backlog before it went.
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i += 250 {
			var batch []inventory.Event
			for j := i; j < min(to, i+250); j++ {
				batch = append(batch, inventory.Event{EventID: fmt.Sprintf("pg%d", j), Type: inventory.Receipt,
					Store: fmt.Sprintf("G%d", j%5), SKU: fmt.Sprintf("K%d", j%30), Qty: 1})
			}
			if _, err := s.store.Apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	const n = 3000
	write(0, 2000)
	admin, err := sql.Open("pgx", s.pg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// terminate drops every other connection to the test's database; waiting, only those
	// of a write of pending messages waiting for a lock (it answers how many).
	terminate := func(waiting bool) int {
		q := `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
		if waiting {
			q += ` AND wait_event_type = 'Lock' AND query LIKE '%webhook_pending%'`
		}
		var k int
		if err := admin.QueryRowContext(ctx, q).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	delivered := func() int { return len(changesOf(t, recv.State().Messages)) }
	testenv.Eventually(t, "a part of the backlog delivered", time.Minute, func() bool { return delivered() >= 200 })
	if k := terminate(false); k == 0 {
		t.Fatal("no connection to drop")
	}
	write(2000, 2500)
	testenv.Eventually(t, "deliveries after the connections dropped", time.Minute, func() bool { return delivered() > 2000 })
	hang, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hang.ExecContext(ctx, `LOCK TABLE webhook_pending IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	write(2500, n) // to be kept pending: the pend waits on the lock
	testenv.Eventually(t, "a delivery's write waiting on the hung table, dropped", time.Minute, func() bool { return terminate(true) > 0 })
	if err := hang.Commit(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "every change at the receiver", 3*time.Minute, func() bool { return delivered() >= n },
		func() string { return fmt.Sprintf("%d changes of %d", delivered(), n) })
	checkOncePerItemInOrder(t, changesOf(t, recv.State().Messages), n)
	if st := recv.State(); st.BadSignatures != 0 {
		t.Errorf("%d bad signatures", st.BadSignatures)
	}
}
