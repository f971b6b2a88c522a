package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jaego/jaego/internal/demo"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/testenv"
	"github.com/redis/rueidis"
)

// browser starts headless Chromium for the test (Debian's chromium; scripts/test.sh
// installs it). Without it the test fails and says how to get it: it never skips.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console tests need Chromium: run scripts/test.sh (it installs it) or apt-get install -y chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// screenshot takes the page. With JAEGO_SCREENSHOTS=1 it writes docs/console/<name>.png
// (the docs' screenshots are made by the test run, not by hand:
// JAEGO_SCREENSHOTS=1 go test -run TestConsole ./cmd/jaego); otherwise a temporary folder,
// so that a test run leaves the tree as it was.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if os.Getenv("JAEGO_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "..", "docs", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsole drives the console of jaego dev in headless Chromium: the stock deep link
// shows the record's numbers as the API has them, and an event posted through the API
// appears in the live feed.
func TestConsole(t *testing.T) {
	s := start(t, map[string]string{}, "dev", "--http", "127.0.0.1:0")
	ctx := browser(t)
	var st map[string]any
	getJSON(t, s.api+"/v1/stores/"+demo.Stores[0]+"/skus/"+demo.SKUs[0], &st)
	row := `#stock-table tr[data-sku="` + demo.SKUs[0] + `"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/stock?store="+demo.Stores[0]+"&sku="+demo.SKUs[0]),
		chromedp.WaitVisible(row+` td.available`),
	); err != nil {
		t.Fatalf("stock deep link: %v", err)
	}
	available, err := chromedp.Run(ctx, chromedp.Text(row+` td.available`))
	if err != nil {
		t.Fatal(err)
	}
	onHand, err := chromedp.Run(ctx, chromedp.Text(row+` td.on-hand`))
	if err != nil {
		t.Fatal(err)
	}
	if available != strconv.Itoa(int(st["available"].(float64))) || onHand != strconv.Itoa(int(st["on_hand"].(float64))) {
		t.Errorf("the console shows available %s, on hand %s; the API %v", available, onHand, st)
	}
	screenshot(t, ctx, "stock")
	// One SKU across stores, by its deep link too.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/stock?sku="+demo.SKUs[0]+"&stores="+demo.Stores[0]+",S002,S003"),
		chromedp.WaitVisible(`#stock-table tr[data-store="S003"]`),
	); err != nil {
		t.Fatalf("one SKU across stores: %v", err)
	}

	// The live feed: an event posted through the API shows up.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.api+"/console/feed"), chromedp.WaitVisible(`#feed-table`)); err != nil {
		t.Fatal(err)
	}
	// The page subscribes as it loads; events go on until one shows (it joined by then).
	var seen bool
	for i := 0; i < 50 && !seen; i++ {
		id := "console-" + strconv.Itoa(i)
		if code, ans := post(t, s.api+"/v1/events", `{"event_id":"`+id+`","type":"receipt","store":"`+demo.Stores[0]+`","sku":"`+demo.SKUs[0]+`","qty":1}`); code != 200 {
			t.Fatalf("event: %d %v", code, ans)
		}
		wait, cancel := context.WithTimeout(ctx, 2*time.Second)
		seen = chromedp.Do(wait, chromedp.WaitVisible(`#feed-table tr[data-event="`+id+`"]`)) == nil
		cancel()
	}
	if !seen {
		t.Fatalf("no posted event appeared in the live feed")
	}
	screenshot(t, ctx, "feed")

	// A problem from the API is shown readably: an unknown store id.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/stock?store=bad%20store&sku=A"),
		chromedp.WaitVisible(`#problem`),
	); err != nil {
		t.Fatal(err)
	}
	problem, err := chromedp.Run(ctx, chromedp.Text(`#problem`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(problem, "store") || !strings.Contains(problem, "invalid_input") {
		t.Errorf("problem shown: %q", problem)
	}

	// Promotions: create one through the page (its JSON form), see it in the gift preview,
	// stop it through the page, and see the preview change. confirm() says yes.
	previewGift := func() string {
		t.Helper()
		// The answer is new list items: the old ones go first.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("preview").replaceChildren(); true`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx,
			chromedp.SetValue(`#preview-items`, "CONSOLE-T:2"),
			chromedp.Click(`#preview-form button`),
			chromedp.WaitVisible(`#preview li`),
		); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(`#preview`))
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	spec := `{"name":"Console test","starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","priority":1,` +
		`"channels":["online"],"targets":["CONSOLE-T"],"condition":{"min_qty":2,"min_amount":0},"gifts":[{"sku":"CONSOLE-G","qty":1}]}`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/promotions"),
		chromedp.WaitVisible(`#promo-spec`),
	); err != nil {
		t.Fatal(err)
	}
	sayYes := func() {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.confirm = () => true; true`)); err != nil {
			t.Fatal(err)
		}
	}
	sayYes()
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#promo-spec`, `{"name":""}`), // refused: the API's message shows
		chromedp.Click(`#promo-form button`),
		chromedp.WaitVisible(`#problem`),
	); err != nil {
		t.Fatal(err)
	}
	if msg, _ := chromedp.Run(ctx, chromedp.Text(`#problem`)); !strings.Contains(msg, "invalid_input") {
		t.Errorf("a refused promotion shows %q", msg)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#promo-spec`, spec),
		chromedp.Click(`#promo-form button`),
		chromedp.WaitVisible(`#promo-table tr[data-name="Console test"] button`),
	); err != nil {
		t.Fatal(err)
	}
	if got := previewGift(); !strings.Contains(got, "CONSOLE-G ×1") {
		t.Fatalf("preview with the promotion: %q", got)
	}
	// A view renders only its latest request: five overlapping loads of the list leave each
	// promotion once (a view that cleared, awaited and appended drew every row five times).
	// A promotion that starts later says scheduled.
	if code, ans := post(t, s.api+"/v1/admin/promotions", `{"name":"Later","starts_at":"2098-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z",`+
		`"channels":["online"],"targets":["CONSOLE-L"],"condition":{"min_qty":1},"gifts":[{"sku":"CONSOLE-G","qty":1}]}`); code != 201 {
		t.Fatalf("a scheduled promotion: %d %v", code, ans)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(async () => {
		await Promise.all([promotionsView(), promotionsView(), promotionsView(), promotionsView(), promotionsView()]);
		return document.querySelectorAll('#promo-table tr[data-name="Console test"]').length;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || rows != 1 {
		t.Fatalf("after five overlapping loads the promotion is listed %d times (%v)", rows, err)
	}
	if status, _ := chromedp.Run(ctx, chromedp.Text(`#promo-table tr[data-name="Later"] .status`)); status != "scheduled" {
		t.Errorf("a promotion that starts in 2098 says %q", status)
	}
	screenshot(t, ctx, "promotions")
	if err := chromedp.Do(ctx,
		chromedp.Click(`#promo-table tr[data-name="Console test"] button`),
		chromedp.WaitNotPresent(`#promo-table tr[data-name="Console test"] button`),
	); err != nil {
		t.Fatal(err)
	}
	if got := previewGift(); !strings.Contains(got, "No gift") {
		var list map[string]any
		getJSON(t, s.api+"/v1/admin/promotions", &list)
		t.Errorf("preview after the stop: %q (promotions: %v)", got, list)
	}

	// Locks: a planted lock is listed and force-unlocked through the page.
	var redisAddr string
	for _, line := range s.lines {
		if m := regexp.MustCompile(`redis:\s+(127\.0\.0\.1:\d+)`).FindStringSubmatch(line); m != nil {
			redisAddr = m[1]
		}
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := lock.New(rc, lock.Options{ClassicPubSub: true}).TryLock(context.Background(), "planted", 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/locks"),
		chromedp.WaitVisible(`#lock-table tr[data-name="planted"] button`),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "locks")
	sayYes()
	if err := chromedp.Do(ctx,
		chromedp.Click(`#lock-table tr[data-name="planted"] button`),
		chromedp.WaitNotPresent(`#lock-table tr[data-name="planted"]`),
	); err != nil {
		t.Fatal(err)
	}
	var locks struct {
		Locks []struct {
			Name string `json:"name"`
		} `json:"locks"`
	}
	getJSON(t, s.api+"/v1/admin/locks", &locks)
	for _, l := range locks.Locks {
		if l.Name == "planted" {
			t.Errorf("the planted lock is still held after the console's force-unlock")
		}
	}

	// History (the durable copy's ledger), a reservation, and health: each page shows what
	// the API has.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/history?store="+demo.Stores[0]+"&sku="+demo.SKUs[0]),
		chromedp.WaitVisible(`#history-table tbody tr`),
	); err != nil {
		t.Fatalf("history: %v", err)
	}
	screenshot(t, ctx, "history")
	if code, ans := post(t, s.api+"/v1/reservations", `{"reservation_id":"console-r1","store":"`+demo.Stores[0]+`","items":[{"sku":"`+demo.SKUs[0]+`","qty":1}]}`); code != 201 {
		t.Fatalf("hold: %d %v", code, ans)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/reservations?id=console-r1"),
		chromedp.WaitVisible(`#rsv-confirm`),
	); err != nil {
		t.Fatalf("reservation: %v", err)
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(`#rsv`)); !strings.Contains(text, "held") {
		t.Errorf("the reservation page shows %q", text)
	}
	// The store's held reservations are listed without knowing an id; its link opens one.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/reservations?store="+demo.Stores[0]),
		chromedp.WaitVisible(`#rsv-table tr[data-id="console-r1"]`),
		chromedp.Click(`#rsv-table tr[data-id="console-r1"] a`),
		chromedp.WaitVisible(`#rsv-cancel`),
	); err != nil {
		t.Fatalf("the store's reservations: %v", err)
	}
	screenshot(t, ctx, "reservations")
	if err := chromedp.Do(ctx,
		chromedp.Click(`#rsv-cancel`),
		chromedp.WaitNotVisible(`#rsv-cancel`),
	); err != nil {
		t.Fatalf("cancel through the page: %v", err)
	}
	var rsv map[string]any
	if getJSON(t, s.api+"/v1/reservations/console-r1", &rsv); rsv["status"] != "cancelled" {
		t.Errorf("after the page's cancel: %v", rsv)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/health"),
		chromedp.WaitVisible(`#health[data-complete] dd`),
	); err != nil {
		t.Fatalf("health: %v", err)
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(`#health`)); !strings.Contains(text, "Readiness") || !strings.Contains(text, "closed") ||
		!strings.Contains(text, "Durable copy") || !strings.Contains(text, "Kafka consumer lag") {
		t.Errorf("the health page shows %q", text)
	}
	screenshot(t, ctx, "health")
}

// TestConsoleWithKeys: with access control on, the console asks for a key, says so
// readably, and works with the key given (kept in the tab's sessionStorage only).
func TestConsoleWithKeys(t *testing.T) {
	path, keys := keysFile(t)
	s := start(t, map[string]string{"JAEGO_API_KEYS_FILE": path}, "dev", "--http", "127.0.0.1:0")
	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/stock?store="+demo.Stores[0]+"&sku="+demo.SKUs[0]),
		chromedp.WaitVisible(`#problem`),
	); err != nil {
		t.Fatal(err)
	}
	if msg, _ := chromedp.Run(ctx, chromedp.Text(`#problem`)); !strings.Contains(msg, "unauthenticated") || !strings.Contains(msg, "API key") {
		t.Errorf("without a key the console says %q", msg)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#api-key`, keys["reader"]),
		chromedp.Click(`#key-form button`),
		chromedp.WaitVisible(`#stock-table tr[data-sku="`+demo.SKUs[0]+`"]`),
	); err != nil {
		t.Fatalf("with the reader key: %v", err)
	}
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("jaego-api-key") + "|" + (localStorage.length === 0)`))
	if err != nil || stored != keys["reader"]+"|true" {
		t.Errorf("the key is kept as %q (%v): want it in sessionStorage only", stored, err)
	}
}

// TestConsoleSourcing drives the sourcing page of jaego dev by its deep link: from Sinchon,
// 15 of a SKU only Myeongdong has; the plan names Myeongdong, Hongdae (nearer, short) and
// Yeouido (nearer, closed) say why they were passed over, and the map draws the stores
// within reach coloured by what they can supply. The form's answer is the same page.
func TestConsoleSourcing(t *testing.T) {
	s := start(t, map[string]string{}, "dev", "--http", "127.0.0.1:0")
	ctx := browser(t)
	link := s.api + "/console/sourcing?items=" + demo.SKUs[0] + ":15&at=37.5552,126.9368&radius=10&capability=same_day&max=1"
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(`#src-plans li.best`), chromedp.WaitVisible(`#src-skipped tr[data-store="S005"]`)); err != nil {
		t.Fatalf("sourcing deep link: %v", err)
	}
	best, err := chromedp.Run(ctx, chromedp.Text(`#src-plans li.best`))
	if err != nil || !strings.HasPrefix(best, "S003 (") {
		t.Fatalf("best plan shown: %q %v", best, err)
	}
	for store, want := range map[string]string{"S002": "short: " + demo.SKUs[0] + " 9/15", "S005": "closed"} {
		got, err := chromedp.Run(ctx, chromedp.Text(`#src-skipped tr[data-store="`+store+`"] td.reason`))
		if err != nil || got != want {
			t.Errorf("%s passed over because %q (%v), want %q", store, got, err, want)
		}
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("#src-map circle.store")].map((c) => c.dataset.store + ":" + c.classList[1] + (c.classList.contains("chosen") ? "*" : "")).sort().join(" ")`))
	if err != nil || drawn != "S002:short S003:complete* S005:closed" {
		t.Errorf("map: %q (%v)", drawn, err)
	}
	screenshot(t, ctx, "sourcing")
	// The form: two stores allowed, the plan's answer replaces the page's, and the link too.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#src-items`, demo.SKUs[0]+":15, "+demo.SKUs[1]+":1"),
		chromedp.SetValue(`#src-max`, "2"),
		chromedp.Click(`#src-form button`),
		chromedp.WaitVisible(`#src-plans li.best`),
	); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the form's plan", 10*time.Second, func() bool {
		loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
		text, _ := chromedp.Run(ctx, chromedp.Text(`#src-plans li.best`))
		return strings.Contains(loc, "max=2") && strings.Contains(text, demo.SKUs[1])
	})
}

// TestConsoleWebhooks drives the webhooks page: subscribe (the secret shown once), a
// delivery that shows as the last success, the delivery log, a test message, and pause.
func TestConsoleWebhooks(t *testing.T) {
	s := start(t, map[string]string{}, "dev", "--http", "127.0.0.1:0")
	recv := testenv.StartReceiver(t)
	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/webhooks"),
		chromedp.WaitVisible(`#wh-none`),
		chromedp.SetValue(`#wh-url`, recv.URL),
		chromedp.SetValue(`#wh-events`, "stock.changed, stock.out"),
		chromedp.Click(`#wh-form button`),
		chromedp.WaitVisible(`#wh-secret`),
		chromedp.WaitVisible(`#wh-table tbody tr`),
	); err != nil {
		t.Fatal(err)
	}
	said, err := chromedp.Run(ctx, chromedp.Text(`#wh-secret`))
	secret := regexp.MustCompile(`whsec_\S+`).FindString(said)
	if err != nil || secret == "" {
		t.Fatalf("the secret was not shown: %q %v", said, err)
	}
	recv.Control(map[string]any{"secrets": []string{secret}})
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#wh-table tbody tr").dataset.id`))
	if err != nil {
		t.Fatal(err)
	}
	if a := call(t, "POST", s.api+"/v1/events", `{"events":[`+ev("console-1", inventory.Receipt, demo.Stores[0], demo.SKUs[0], 1)+`]}`); a.status != 200 {
		t.Fatal(a.body)
	}
	testenv.Eventually(t, "the delivery", 30*time.Second, func() bool { return len(recv.State().Messages) == 1 })
	// A delivery is written within 2.5 s of it (with the next pend, or alone after that).
	testenv.Eventually(t, "the delivery written", 15*time.Second, func() bool {
		return call(t, "GET", s.api+"/v1/admin/webhooks/"+id, "").body["last_success"] != nil
	})
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.api+"/console/webhooks"),
		chromedp.WaitVisible(`#wh-table tbody tr[data-id="`+id+`"]`),
		chromedp.Click(`button[aria-label="Show the deliveries of `+id+`"]`),
		chromedp.WaitVisible(`#wh-log tbody tr`),
	); err != nil {
		t.Fatal(err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(`#wh-log tbody tr`))
	if err != nil || !strings.Contains(row, "204") || !strings.Contains(row, "stock.changed") {
		t.Errorf("delivery log row: %q %v", row, err)
	}
	last, err := chromedp.Run(ctx, chromedp.Text(`#wh-table tbody tr td:nth-child(7)`))
	if err != nil || last == "never" {
		t.Errorf("last success shown: %q %v", last, err)
	}
	screenshot(t, ctx, "webhooks")
	if err := chromedp.Do(ctx, chromedp.Click(`button[aria-label="Send a test message to `+id+`"]`)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the test message's answer", 20*time.Second, func() bool {
		said, _ := chromedp.Run(ctx, chromedp.Text(`#wh-secret`))
		return strings.Contains(said, "Test message to "+id+": 204")
	})
	if err := chromedp.Do(ctx, chromedp.Click(`button[aria-label="Pause `+id+`"]`),
		chromedp.WaitVisible(`button[aria-label="Resume `+id+`"]`)); err != nil {
		t.Fatal(err)
	}
	if a := call(t, "GET", s.api+"/v1/admin/webhooks/"+id, ""); a.body["status"] != "paused" {
		t.Errorf("after the console's pause: %v", a.body)
	}
}
