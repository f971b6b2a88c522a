package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
)

func seedChanges(t *testing.T, e *env, n int) []inventory.Event {
	var events []inventory.Event
	for i := 0; i < n; i++ {
		events = append(events, inventorytest.Ev(inventory.Receipt, fmt.Sprintf("C%d", i%5), fmt.Sprintf("K%d", i%3), 1))
	}
	seed(t, e, events...)
	return events
}

func TestChangesPagedAndStreamed(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	from := time.Now().Add(-time.Second)
	events := seedChanges(t, e, 23)
	to := time.Now().Add(time.Millisecond)
	e.ahead.Store(int64(time.Second)) // the range is over: it is complete
	q := fmt.Sprintf("from=%s&to=%d", url.QueryEscape(from.Format(time.RFC3339Nano)), to.UnixMilli())
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		a := do(t, "GET", e.url+"/v1/changes?"+q+"&limit=4&cursor="+url.QueryEscape(cursor), "")
		if a.status != 200 {
			t.Fatalf("page: %s", a.raw)
		}
		for _, c := range a.body["changes"].([]any) {
			id := c.(map[string]any)["event_id"].(string)
			if seen[id] {
				t.Fatalf("%s twice", id)
			}
			seen[id] = true
			for _, f := range []string{"id", "store", "sku", "type", "delta", "on_hand", "reserved", "version", "event_id", "at"} {
				if _, ok := c.(map[string]any)[f]; !ok {
					t.Fatalf("change lacks %s: %v", f, c)
				}
			}
		}
		pages++
		if cursor = a.body["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if len(seen) != len(events) || pages != 6 {
		t.Errorf("%d changes in %d pages, want %d in 6", len(seen), pages, len(events))
	}

	// NDJSON: the whole range in one answer; the trailer says it is complete.
	req, _ := http.NewRequest("GET", e.url+"/v1/changes?"+q, nil)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) != len(events) {
		t.Errorf("ndjson: %d %s, %d lines", resp.StatusCode, resp.Header.Get("Content-Type"), len(lines))
	}
	if _, ok := resp.Trailer["X-Next-Cursor"]; !ok || resp.Trailer.Get("X-Next-Cursor") != "" {
		t.Errorf("trailer %v", resp.Trailer)
	}

	// Bad ranges, limits and cursors.
	now := time.Now().UnixMilli()
	for _, bad := range []string{"", "from=yesterday", fmt.Sprintf("from=%d&to=%d", now, now-1), q + "&limit=0", q + "&limit=10001",
		q + "&limit=x", q + "&cursor=bm90LWEtY3Vyc29y", fmt.Sprintf("from=%d&to=%d&cursor=%s", now-5, now, url.QueryEscape(cursorOf(t, e, q)))} {
		a := do(t, "GET", e.url+"/v1/changes?"+bad, "")
		if a.status != 400 || a.ctype != "application/problem+json" {
			t.Errorf("%q: %d %s", bad, a.status, a.raw)
		}
	}
	old := time.Now().Add(-49 * time.Hour).UnixMilli()
	do(t, "GET", e.url+"/v1/changes?from="+strconv.FormatInt(old, 10), "").problem(t, 410, "range_expired")
}

func cursorOf(t *testing.T, e *env, q string) string {
	a := do(t, "GET", e.url+"/v1/changes?"+q+"&limit=1", "")
	return a.body["next_cursor"].(string)
}

func TestSnapshots(t *testing.T) {
	e := newRedisEnv(t, 2*time.Second)
	seedChanges(t, e, 15)
	a := do(t, "GET", e.url+"/v1/stores/C1/snapshot", "")
	if a.status != 200 || len(a.body["items"].([]any)) != 3 || a.body["cursor"] == "" {
		t.Fatalf("store snapshot: %s", a.raw)
	}
	// Changes after the snapshot's cursor: exactly the ones applied after it.
	seed(t, e, inventorytest.Ev(inventory.Sale, "C1", "K0", 1))
	c := do(t, "GET", e.url+"/v1/changes?cursor="+url.QueryEscape(a.body["cursor"].(string)), "")
	if chs := c.body["changes"].([]any); c.status != 200 || len(chs) != 1 || chs[0].(map[string]any)["type"] != "sale" {
		t.Errorf("changes after the snapshot: %s", c.raw)
	}
	do(t, "GET", e.url+"/v1/stores/C:1/snapshot", "").problem(t, 400, "invalid_input")

	var items int
	page := ""
	for i := 0; ; i++ {
		a := do(t, "GET", e.url+"/v1/snapshot?page="+url.QueryEscape(page), "")
		if a.status != 200 {
			t.Fatalf("estate page: %s", a.raw)
		}
		items += len(a.body["items"].([]any))
		if page = a.body["next_page"].(string); page == "" {
			break
		}
	}
	if items != 15 {
		t.Errorf("estate snapshot: %d items, want 15", items)
	}
	do(t, "GET", e.url+"/v1/snapshot?page=nonsense", "").problem(t, 400, "invalid_cursor")
}

// TestChangeStreamSSE: the live tail delivers changes applied after it started, and a
// reconnect with Last-Event-ID resumes after the last batch.
func TestChangeStreamSSE(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	seedChanges(t, e, 3) // before the stream: not sent
	// Every read of the stream ends by this deadline: a tail that never delivers fails the
	// test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(lastID string) (*bufio.Scanner, func()) {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/changes/stream", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), ":") { // the stream's first comment: it is positioned
			t.Fatalf("stream did not start: %q", sc.Text())
		}
		return sc, func() { resp.Body.Close() }
	}
	// next reads events until n changes arrived; it returns their event ids and the last id.
	next := func(sc *bufio.Scanner, n int) ([]string, string) {
		var ids []string
		lastID := ""
		for len(ids) < n && sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				lastID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				var b struct {
					Changes []inventory.Change `json:"changes"`
				}
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &b); err != nil {
					t.Fatal(err)
				}
				for _, c := range b.Changes {
					ids = append(ids, c.EventID)
				}
			}
		}
		if len(ids) < n {
			t.Fatalf("the stream ended after %d of %d changes: %v", len(ids), n, sc.Err())
		}
		return ids, lastID
	}
	sc, closeStream := open("")
	first := []inventory.Event{inventorytest.Ev(inventory.Receipt, "L1", "A", 1), inventorytest.Ev(inventory.Receipt, "L2", "B", 2)}
	seed(t, e, first...)
	got, lastID := next(sc, 2)
	closeStream()
	// Two stores, two shard groups: the feed orders per store × SKU only.
	if len(got) != 2 || !(got[0] == first[0].EventID && got[1] == first[1].EventID || got[1] == first[0].EventID && got[0] == first[1].EventID) || lastID == "" {
		t.Fatalf("live tail: %v (last id %q)", got, lastID)
	}
	// Applied while disconnected: delivered after the reconnect, and nothing twice.
	later := inventorytest.Ev(inventory.Sale, "L1", "A", 1)
	seed(t, e, later)
	sc, closeStream = open(lastID)
	defer closeStream()
	if got, _ := next(sc, 1); len(got) != 1 || got[0] != later.EventID {
		t.Fatalf("after reconnect: %v", got)
	}
}

// An ended stream closes its connection at once: a subscriber dropped for being slow gets
// its dropped event and then the end of the stream (before, the hijacked connection stayed
// open and silent until a finalizer closed it, so a client never reconnected).
func TestChangeStreamEndClosesTheConnection(t *testing.T) {
	// No garbage collection meanwhile: a finalizer closing the lost connection would pass
	// for the handler closing it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	store := inmem.New(inmem.Options{})
	e := serve(t, &env{store: store, ahead: new(atomic.Int64)}, invhttp.Options{Timeout: 2 * time.Second, Feed: store,
		Tail: inventorytest.RunHub(t, store, inventory.HubOptions{Buffer: 1, Page: 100})})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/changes/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("stream did not start: %q %v", line, err)
	}
	// The client reads nothing while thousands of changes arrive: its socket fills, the
	// hub's queue of one batch overflows, and the subscriber is dropped.
	for i := 0; i < 40; i++ {
		seedChanges(t, e, 500)
	}
	rest, err := io.ReadAll(br) // ends only when the server closes the connection
	if err != nil {
		t.Fatalf("reading the stream to its end: %v (ctx: %v)", err, ctx.Err())
	}
	if !strings.Contains(string(rest), "event: dropped") {
		t.Fatalf("the stream ended without its dropped event (%d bytes)", len(rest))
	}
}

// Follow (design §4): with from and no to the range is open. Its cursor keeps returning the
// changes applied after it, never turns empty, and resumes a live tail. Before, to defaulted
// to now: the cursor returned nothing later, turned empty 2 s on, and the stream refused it.
func TestChangesFollow(t *testing.T) {
	for name, newE := range map[string]func(*testing.T, time.Duration) *env{"inmem": newEnv, "redis": newRedisEnv} {
		t.Run(name, func(t *testing.T) {
			e := newE(t, 2*time.Second)
			from := time.Now().Add(-time.Second).UnixMilli()
			seedChanges(t, e, 3)
			a := do(t, "GET", fmt.Sprintf("%s/v1/changes?from=%d", e.url, from), "")
			if a.status != 200 || len(a.body["changes"].([]any)) != 3 || a.body["next_cursor"] == "" {
				t.Fatalf("first page: %d %s", a.status, a.raw)
			}
			cursor := a.body["next_cursor"].(string)
			for round := range 3 {
				e.ahead.Add(int64(3 * time.Second)) // long past "now" of the first read
				later := []inventory.Event{inventorytest.Ev(inventory.Sale, "C1", "K1", 1), inventorytest.Ev(inventory.Receipt, "C2", "K2", 2)}
				seed(t, e, later...)
				a = do(t, "GET", e.url+"/v1/changes?cursor="+url.QueryEscape(cursor), "")
				got := a.body["changes"].([]any)
				if a.status != 200 || len(got) != 2 || a.body["next_cursor"] == "" {
					t.Fatalf("round %d: %d %s", round, a.status, a.raw)
				}
				ids := map[string]bool{}
				for _, c := range got {
					ids[c.(map[string]any)["event_id"].(string)] = true
				}
				if !ids[later[0].EventID] || !ids[later[1].EventID] {
					t.Fatalf("round %d: %v, want %s and %s", round, ids, later[0].EventID, later[1].EventID)
				}
				cursor = a.body["next_cursor"].(string)
				a = do(t, "GET", e.url+"/v1/changes?cursor="+url.QueryEscape(cursor), "")
				if len(a.body["changes"].([]any)) != 0 || a.body["next_cursor"] == "" {
					t.Fatalf("round %d, nothing new: %s", round, a.raw)
				}
			}
			// The page's cursor resumes a live tail.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/changes/stream?cursor="+url.QueryEscape(cursor), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("stream from a page's cursor: %d %s", resp.StatusCode, b)
			}
			// A closed range's cursor is refused, with a message that says what to use.
			a = do(t, "GET", fmt.Sprintf("%s/v1/changes?from=%d&to=%d", e.url, from, time.Now().Add(time.Hour).UnixMilli()), "")
			closed := a.body["next_cursor"].(string)
			resp2, err := http.Get(e.url + "/v1/changes/stream?cursor=" + url.QueryEscape(closed))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp2.Body)
			resp2.Body.Close()
			if resp2.StatusCode != 400 || !strings.Contains(string(b), "without to") {
				t.Fatalf("stream from a closed range's cursor: %d %s", resp2.StatusCode, b)
			}
		})
	}
}
