package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/testenv"
)

// keyed sends method url with key and body, its answer validated against the OpenAPI
// document.
func keyed(t *testing.T, method, url, key, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// seoulCSV is a directory file: Gangnam, Hongdae, Myeongdong (same-day only), Jamsil
// (pickup only), Yeouido (closed).
const seoulCSV = `store,name,lat,lon,capabilities,status
GN,Gangnam,37.4979,127.0276,same_day;pickup,open
HD,Hongdae,37.5563,126.9236,same_day;pickup,open
MD,Myeongdong,37.5636,126.9826,same_day,open
JS,Jamsil,37.5133,127.1001,pickup,open
YD,Yeouido,37.5219,126.9245,same_day;pickup,closed
`

// cityHall is the point the tests source for: Myeongdong 0.51 km, Hongdae 4.92, Yeouido
// 6.82, Gangnam 8.78, Jamsil 12.28.
const cityHall = `{"lat":37.5663,"lon":126.9779}`

// TestSourcingEndToEnd is design §15 on the built binary with keys, PostgreSQL and Redis:
// the directory loaded by `jaego stores load` (a bad file puts nothing), the stores near a
// point, plans with the stores passed over and why, a hold that needs the write scope and
// answers the same on a retry, the admin routes, and a Redis that lost its data: sourcing
// answers from the durable directory and copy, and `jaego restore` brings the directory
// back.
func TestSourcingEndToEnd(t *testing.T) {
	t.Parallel() // it waits on servers and processes, like the other binary tests that run beside each other
	bin := buildJaego(t)
	s := newCopyStack(t)
	keys, tok := keysFile(t)
	p := s.serve(t, bin, "--api-keys", keys)
	s.bootstrapped(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + s.redis.Addr + "/0", "JAEGO_POSTGRES_URL": s.pg, "JAEGO_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()

	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte(seoulCSV+"XX,Nowhere,95,127,pickup,open\nGN,Twice,37,127,,open\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if err := run(ctx, []string{"jaego", "stores", "load", bad}, getenv, nil, io.Discard, &stderr); err == nil ||
		!strings.Contains(err.Error(), "2 bad lines") || !strings.Contains(stderr.String(), bad+":7: lat") || !strings.Contains(stderr.String(), bad+":8: store GN is given twice") {
		t.Fatalf("bad directory file: %v\n%s", err, stderr.String())
	}
	if a := keyed(t, "GET", p.api+"/v1/admin/stores/GN", tok["admin"], ""); a.status != 404 {
		t.Fatalf("a bad file put GN: %+v", a)
	}
	var out strings.Builder
	if err := run(ctx, []string{"jaego", "stores", "load", "-"}, getenv, strings.NewReader(seoulCSV), &out, t.Output()); err != nil || !strings.Contains(out.String(), "5 stores put") {
		t.Fatalf("stores load: %v %s", err, out.String())
	}
	stock := `{"events":[{"event_id":"e1","type":"receipt","store":"MD","sku":"TONER","qty":5},{"event_id":"e2","type":"receipt","store":"HD","sku":"TONER","qty":5},
		{"event_id":"e3","type":"receipt","store":"HD","sku":"CREAM","qty":2},{"event_id":"e4","type":"receipt","store":"GN","sku":"CREAM","qty":9},
		{"event_id":"e5","type":"receipt","store":"JS","sku":"TONER","qty":50},{"event_id":"e6","type":"receipt","store":"JS","sku":"CREAM","qty":50},
		{"event_id":"e7","type":"receipt","store":"YD","sku":"TONER","qty":50},{"event_id":"e8","type":"receipt","store":"YD","sku":"CREAM","qty":50}]}`
	if a := keyed(t, "POST", p.api+"/v1/events", tok["writer"], stock); a.status != 200 {
		t.Fatalf("stock: %+v", a)
	}

	near := keyed(t, "GET", p.api+"/v1/stores?near=37.5663,126.9779&radius_km=10&capability=same_day", tok["reader"], "")
	if ids := storeIDs(near.body["stores"]); near.status != 200 || ids != "MD,HD,YD,GN" {
		t.Fatalf("stores near City Hall with same_day: %d %s", near.status, ids)
	}
	basket := `"items":[{"sku":"TONER","qty":2},{"sku":"CREAM","qty":3}],"to":` + cityHall + `,"capability":"same_day"`
	// One store: Gangnam lacks TONER, Hongdae has 2 CREAM: nobody within 10 km can do it
	// alone; the best partial plan is Myeongdong's TONER.
	one := keyed(t, "POST", p.api+"/v1/sourcing", tok["reader"], `{`+basket+`}`)
	if one.status != 200 || planOf(one.body, 0) != "MD:TONER" || complete(one.body, 0) {
		t.Fatalf("max_stores 1: %d %v", one.status, one.body)
	}
	// Two stores: Myeongdong's TONER and Gangnam's CREAM; Hongdae (short of CREAM) and
	// Yeouido (closed) are nearer than Gangnam and say why.
	two := keyed(t, "POST", p.api+"/v1/sourcing", tok["reader"], `{`+basket+`,"max_stores":2}`)
	if two.status != 200 || planOf(two.body, 0) != "MD:TONER GN:CREAM" || !complete(two.body, 0) || skipped(two.body) != "HD:short:CREAM YD:closed" {
		t.Fatalf("max_stores 2: %d plan %s skipped %s: %v", two.status, planOf(two.body, 0), skipped(two.body), two.body)
	}
	hold := `{` + basket + `,"max_stores":2,"hold":{"reservation_id":"web-7","hold":"10m"}}`
	if a := keyed(t, "POST", p.api+"/v1/sourcing", tok["reader"], hold); a.status != 403 {
		t.Fatalf("a hold with a read-only key: %+v", a)
	}
	held := keyed(t, "POST", p.api+"/v1/sourcing", tok["all"], hold)
	if held.status != 201 || heldIDs(held.body) != "web-7-1@MD web-7-2@GN" {
		t.Fatalf("hold: %d %v", held.status, held.body)
	}
	again := keyed(t, "POST", p.api+"/v1/sourcing", tok["all"], hold)
	if again.status != 200 || heldIDs(again.body) != "web-7-1@MD web-7-2@GN" || again.body["held"].(map[string]any)["again"] != true {
		t.Fatalf("the same hold again: %d %v", again.status, again.body)
	}
	if a := keyed(t, "GET", p.api+"/v1/stores/GN/skus/CREAM", tok["reader"], ""); a.body["reserved"] != 3.0 {
		t.Fatalf("GN CREAM after the hold: %v", a.body)
	}
	// Admin: a writer may not move a store; an admin may (close Myeongdong).
	md := `{"name":"Myeongdong","lat":37.5636,"lon":126.9826,"capabilities":["same_day"],"status":"closed"}`
	if a := keyed(t, "PUT", p.api+"/v1/admin/stores/MD", tok["writer"], md); a.status != 403 {
		t.Fatalf("put with a writer key: %+v", a)
	}
	if a := keyed(t, "PUT", p.api+"/v1/admin/stores/MD", tok["admin"], md); a.status != 200 || a.body["status"] != "closed" {
		t.Fatalf("close MD: %+v", a)
	}
	if a := keyed(t, "PUT", p.api+"/v1/admin/stores/MD", tok["admin"], `{"name":"x","lat":37,"lon":200}`); a.status != 400 || a.body["field"] != "lon" {
		t.Fatalf("a bad store: %+v", a)
	}

	// Redis loses its data: sourcing answers from the durable directory and the copy.
	s.copied(t, 10) // the 8 receipts and the 2 reserve changes of the hold
	if err := s.client.Do(ctx, s.client.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the breaker lost", 30*time.Second, func() bool {
		return keyed(t, "GET", p.api+"/v1/admin/breaker", tok["admin"], "").body["state"] == "lost"
	})
	lost := keyed(t, "POST", p.api+"/v1/sourcing", tok["reader"], `{`+basket+`,"max_stores":2}`)
	if lost.status != 200 || skipped(lost.body) != "MD:closed YD:closed" || planOf(lost.body, 0) != "HD:TONER GN:CREAM" {
		t.Fatalf("sourcing while Redis is lost: %d plan %s skipped %s", lost.status, planOf(lost.body, 0), skipped(lost.body))
	}
	out.Reset()
	if err := run(ctx, []string{"jaego", "restore", "--redis", "redis://" + s.redis.Addr + "/0", "--postgres", s.pg}, getenv, nil, &out, t.Output()); err != nil ||
		!strings.Contains(out.String(), "store directory of 5 stores put back") {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	testenv.Eventually(t, "the breaker closed after the restore", 30*time.Second, func() bool {
		return keyed(t, "GET", p.api+"/v1/admin/breaker", tok["admin"], "").body["state"] == "closed"
	})
	back := keyed(t, "GET", p.api+"/v1/stores?near=37.5663,126.9779&radius_km=20", tok["reader"], "")
	if ids := storeIDs(back.body["stores"]); ids != "MD,HD,YD,GN,JS" || back.body["stores"].([]any)[0].(map[string]any)["status"] != "closed" {
		t.Fatalf("the directory after the restore: %s %v", ids, back.body)
	}
	if again := keyed(t, "POST", p.api+"/v1/sourcing", tok["all"], hold); again.status != 200 || heldIDs(again.body) != "web-7-1@MD web-7-2@GN" {
		t.Fatalf("the hold after the restore: %d %v", again.status, again.body)
	}
}

func storeIDs(v any) string {
	var ids []string
	for _, s := range v.([]any) {
		ids = append(ids, s.(map[string]any)["store"].(string))
	}
	return strings.Join(ids, ",")
}

// planOf is plan i as "STORE:SKU,SKU STORE:SKU".
func planOf(body map[string]any, i int) string {
	plans, _ := body["plans"].([]any)
	if len(plans) <= i {
		return "(none)"
	}
	var parts []string
	for _, p := range plans[i].(map[string]any)["stores"].([]any) {
		part := p.(map[string]any)
		var skus []string
		for _, it := range part["items"].([]any) {
			skus = append(skus, it.(map[string]any)["sku"].(string))
		}
		parts = append(parts, part["store"].(string)+":"+strings.Join(skus, ","))
	}
	return strings.Join(parts, " ")
}

func complete(body map[string]any, i int) bool {
	return body["plans"].([]any)[i].(map[string]any)["complete"] == true
}

// skipped is "STORE:reason[:SKU,SKU] …".
func skipped(body map[string]any) string {
	var out []string
	for _, s := range body["skipped"].([]any) {
		sk := s.(map[string]any)
		e := sk["store"].(string) + ":" + sk["reason"].(string)
		if short, ok := sk["short"].([]any); ok {
			var skus []string
			for _, it := range short {
				skus = append(skus, it.(map[string]any)["sku"].(string))
			}
			e += ":" + strings.Join(skus, ",")
		}
		out = append(out, e)
	}
	return strings.Join(out, " ")
}

// heldIDs is "ID@STORE …" of what a hold holds.
func heldIDs(body map[string]any) string {
	h, ok := body["held"].(map[string]any)
	if !ok {
		return "(nothing held)"
	}
	var out []string
	for _, r := range h["reservations"].([]any) {
		rv := r.(map[string]any)
		out = append(out, rv["reservation_id"].(string)+"@"+rv["store"].(string))
	}
	return strings.Join(out, " ")
}

// killedClient sends the requests that jaego serve dies under: its answers are not
// validated, and none waits past its timeout.
var killedClient = &http.Client{Timeout: 30 * time.Second}

// TestSourcingHoldKilled: jaego serve is SIGKILLed while 16 clients source and hold
// baskets split over three stores. Once the holds' time is up, nothing is held, no stock
// is reserved, and no reservation is confirmed: a saga cut in the middle leaves only holds
// that expire. An id whose call was cut answers busy (or, if its answer was on the way,
// what it held) until then, and can be held again after.
func TestSourcingHoldKilled(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	s := newCopyStack(t)
	p := s.serve(t, bin)
	ctx := context.Background()
	if err := run(ctx, []string{"jaego", "stores", "load", "--redis", "redis://" + s.redis.Addr + "/0", "--postgres", s.pg, "-"},
		func(string) string { return "" }, strings.NewReader(seoulCSV), io.Discard, t.Output()); err != nil {
		t.Fatal(err)
	}
	// Each SKU at one store only: every basket of three lines is a saga of three parts.
	stock := `{"events":[{"event_id":"k1","type":"receipt","store":"MD","sku":"A","qty":100000},{"event_id":"k2","type":"receipt","store":"HD","sku":"B","qty":100000},
		{"event_id":"k3","type":"receipt","store":"GN","sku":"C","qty":100000}]}`
	if a := call(t, "POST", p.api+"/v1/events", stock); a.status != 200 {
		t.Fatalf("stock: %+v", a)
	}
	const hold = 4 * time.Second
	var answered atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	ids := make([][]string, 16)
	for w := range 16 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("k%d-%d", w, n)
				ids[w] = append(ids[w], id)
				body := `{"items":[{"sku":"A","qty":1},{"sku":"B","qty":1},{"sku":"C","qty":1}],"to":` + cityHall +
					`,"max_stores":3,"hold":{"reservation_id":"` + id + `","hold":"` + hold.String() + `"}}`
				req, _ := http.NewRequest("POST", p.api+"/v1/sourcing", strings.NewReader(body))
				resp, err := killedClient.Do(req) // not validated: the process dies under it
				if err != nil {
					return
				}
				if resp.StatusCode == 201 {
					answered.Add(1)
				}
				resp.Body.Close()
			}
		})
	}
	testenv.Eventually(t, "holds answered before the kill", time.Minute, func() bool { return answered.Load() >= 50 })
	p.kill(t)
	killedAt := time.Now()
	close(stop)
	wg.Wait()
	p = s.serve(t, bin)
	// A cut call's id: busy until its parts have expired, or what it held if it was answered.
	cut := ids[0][len(ids[0])-1]
	retry := `{"items":[{"sku":"A","qty":1},{"sku":"B","qty":1},{"sku":"C","qty":1}],"to":` + cityHall + `,"max_stores":3,"hold":{"reservation_id":"` + cut + `","hold":"4s"}}`
	if a := call(t, "POST", p.api+"/v1/sourcing", retry); !(a.status == 409 && a.body["code"] == "reservation_conflict") && a.status != 200 && a.status != 201 {
		t.Fatalf("the cut call's id right after the kill: %+v", a)
	}
	testenv.Eventually(t, "every hold expired", time.Minute, func() bool {
		if time.Since(killedAt) < hold {
			return false
		}
		for _, st := range []string{"MD", "HD", "GN"} {
			if a := call(t, "GET", p.api+"/v1/reservations?store="+st+"&status=held&limit=10", ""); a.status != 200 || len(a.body["reservations"].([]any)) > 0 {
				return false
			}
		}
		return true
	})
	for _, key := range []string{"MD/skus/A", "HD/skus/B", "GN/skus/C"} {
		if a := call(t, "GET", p.api+"/v1/stores/"+key, ""); a.body["reserved"] != 0.0 || a.body["on_hand"] != 100000.0 {
			t.Fatalf("%s after every hold expired: %v", key, a.body)
		}
	}
	for _, st := range []string{"MD", "HD", "GN"} {
		if a := call(t, "GET", p.api+"/v1/reservations?store="+st+"&status=confirmed", ""); len(a.body["reservations"].([]any)) > 0 {
			t.Fatalf("confirmed reservations at %s: %v", st, a.body)
		}
	}
	testenv.Eventually(t, "the cut call's id held again once its parts expired", time.Minute+hold, func() bool {
		a := call(t, "POST", p.api+"/v1/sourcing", retry)
		return a.status == 201 || a.status == 200
	})
	t.Logf("%d holds answered before the kill", answered.Load())
}
