package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/inventory/kafkatest"
	"github.com/jaego/jaego/internal/testenv"
)

const posInput = `{"txn_id":"S001-1","store":"S001","till":"01","at":"2026-11-22T12:01:00+09:00","type":"open"}
{"txn_id":"S001-2","store":"S001","at":"2026-11-22T12:02:00+09:00","type":"sale","lines":[{"sku":"8809461234567","qty":2,"price":12000},{"kind":"gift_card","qty":1,"price":10000},{"sku":"8809461234574","qty":-1,"price":9000}]}

{"txn_id":"S002-3","store":"S002","at":"2026-11-22T12:03:00+09:00","type":"return","lines":[{"sku":"8809461234567","qty":1}]}
{"txn_id":"S001-4","store":"S001","at":"2026-11-22T12:04:00+09:00","type":"void","lines":[{"sku":"8809461234567","qty":2}]}
`

func TestRelayFromStdin(t *testing.T) {
	broker := testenv.Kafka(t, 4, invkafka.DefaultTopic)
	var out bytes.Buffer
	err := run(context.Background(), []string{"jaego", "relay", "--kafka", broker, "--linger", "5ms"}, func(string) string { return "" },
		strings.NewReader(posInput), &out, io.Discard)
	if err != nil {
		t.Fatalf("relay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "relayed 4 events from 4 lines (3 stock transactions; left out: 1 non-stock transactions, 1 non-stock lines, 1 blank lines)") {
		t.Errorf("summary: %s", out.String())
	}
	recs := kafkatest.ReadAll(t, broker, invkafka.DefaultTopic, 4)
	got := map[string]inventory.Event{}
	for _, r := range recs {
		var e inventory.Event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != e.Store {
			t.Errorf("record key %q for store %s", r.Key, e.Store)
		}
		got[e.EventID] = e
	}
	want := map[string]struct {
		typ inventory.EventType
		sku string
		qty int64
	}{
		"pos-S001-2-1": {inventory.Sale, "8809461234567", 2},
		"pos-S001-2-3": {inventory.Return, "8809461234574", 1},
		"pos-S002-3-1": {inventory.Return, "8809461234567", 1},
		"pos-S001-4-1": {inventory.SaleCancel, "8809461234567", 2},
	}
	for id, w := range want {
		e, ok := got[id]
		if !ok || e.Type != w.typ || e.SKU != w.sku || e.Qty != w.qty || e.Source != "pos" || e.OccurredAt.IsZero() {
			t.Errorf("%s: %+v, want %+v", id, e, w)
		}
	}
}

func TestRelayMalformedLine(t *testing.T) {
	broker := testenv.Kafka(t, 1, invkafka.DefaultTopic)
	bad := strings.SplitAfter(posInput, "\n")
	input := bad[0] + bad[1] + `{"txn_id":"S001-9","store":"S001","at":"2026-11-22T12:05:00+09:00","type":"sale","lines":[{"sku":"8809461234567","qty":1.5}]}` + "\n" + bad[4]
	var out bytes.Buffer
	err := run(context.Background(), []string{"jaego", "relay", "--kafka", broker}, func(string) string { return "" },
		strings.NewReader(input), &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "qty") {
		t.Fatalf("malformed line 3: %v", err)
	}
	// The two good lines before it were relayed (2 events), and the summary says so.
	if !strings.Contains(out.String(), "relayed 2 events from 3 lines") {
		t.Errorf("summary: %s", out.String())
	}
	if n := kafkatest.EndOffsets(t, broker, invkafka.DefaultTopic); n != 2 {
		t.Errorf("%d records on the topic, want the 2 events before the bad line", n)
	}
}

func TestRelayHTTP(t *testing.T) {
	broker := testenv.Kafka(t, 1, invkafka.DefaultTopic)
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"jaego", "relay", "--kafka", broker, "--http", "127.0.0.1:0", "--auth", "none"}, func(string) string { return "" },
			strings.NewReader(""), outW, io.Discard)
		outW.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	var url string
	buf := make([]byte, 4096)
	for url == "" {
		n, err := outR.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`http://\S+/relay`).Find(buf[:n]); m != nil {
			url = string(m)
		}
	}
	go io.Copy(io.Discard, outR)

	resp, err := http.Post(url, "application/x-ndjson", strings.NewReader(posInput+"{not json}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 400 || p["line"] != 6.0 || p["code"] != "invalid_input" {
		t.Errorf("bad body: %d %v", resp.StatusCode, p)
	}
	resp, err = http.Post(url, "application/x-ndjson", strings.NewReader(posInput))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 200 || st["events"] != 4.0 || st["non_stock_txns"] != 1.0 {
		t.Errorf("good body: %d %v", resp.StatusCode, st)
	}
	// Exactly the 4 events of the good request are on the topic: the bad one produced nothing.
	if n := kafkatest.EndOffsets(t, broker, invkafka.DefaultTopic); n != 4 {
		t.Errorf("%d records on the topic, want the 4 of the good request", n)
	}
}
