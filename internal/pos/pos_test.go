package pos_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/pos"
)

func TestDecodeRefusesMalformed(t *testing.T) {
	ok := `{"txn_id":"T1","store":"S001","at":"2026-11-22T12:00:00Z","type":"sale","lines":[{"sku":"A","qty":1}]}`
	if _, err := pos.Decode([]byte(ok)); err != nil {
		t.Fatalf("valid line: %v", err)
	}
	bad := map[string]string{
		"not json":      `sale A 1`,
		"unknown field": strings.Replace(ok, `"type"`, `"cashier":"kim","type"`, 1),
		"no txn_id":     strings.Replace(ok, `"txn_id":"T1",`, ``, 1),
		"bad store":     strings.Replace(ok, `"S001"`, `"S 001"`, 1),
		"no time":       strings.Replace(ok, `"at":"2026-11-22T12:00:00Z",`, ``, 1),
		"unknown type":  strings.Replace(ok, `"sale"`, `"layaway"`, 1),
		"sale no lines": `{"txn_id":"T1","store":"S001","at":"2026-11-22T12:00:00Z","type":"sale"}`,
		"zero qty":      strings.Replace(ok, `"qty":1`, `"qty":0`, 1),
		"float qty":     strings.Replace(ok, `"qty":1`, `"qty":1.5`, 1),
		"bad sku":       strings.Replace(ok, `"sku":"A"`, `"sku":"A/B"`, 1),
		"unknown kind":  strings.Replace(ok, `"sku":"A"`, `"sku":"A","kind":"bundle"`, 1),
		"two values":    ok + " " + ok,
		"stray closer":  ok + "}",
		"name twice":    strings.Replace(ok, `"store":"S001"`, `"store":"S001","store":"S002"`, 1),
	}
	for name, line := range bad {
		if _, err := pos.Decode([]byte(line)); !errors.Is(err, pos.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReadReportsTheLine(t *testing.T) {
	in := "\n" + `{"txn_id":"T1","store":"S001","at":"2026-11-22T12:00:00Z","type":"open"}` + "\n{oops}\n"
	n := 0
	_, err := pos.Read(strings.NewReader(in), func([]inventory.Event) error { n++; return nil })
	var le *pos.LineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Fatalf("want an error on line 3, got %v", err)
	}
}

func TestDayIsDeterministicWithPeaks(t *testing.T) {
	opts := pos.DayOptions{Transactions: 20000, Stores: 100, SKUs: 1000, Seed: 9, Date: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
	var a, b []pos.Transaction
	for tx := range pos.Day(opts) {
		a = append(a, tx)
	}
	for tx := range pos.Day(opts) {
		b = append(b, tx)
	}
	if len(a) != 20000 || len(b) != 20000 {
		t.Fatalf("%d and %d transactions", len(a), len(b))
	}
	var perHour [24]int
	for i := range a {
		if a[i].TxnID != b[i].TxnID || a[i].Store != b[i].Store || len(a[i].Lines) != len(b[i].Lines) {
			t.Fatalf("transaction %d differs between runs with one seed", i)
		}
		if i > 0 && a[i].At.Before(a[i-1].At) {
			t.Fatalf("transaction %d goes back in time", i)
		}
		perHour[a[i].At.Hour()]++
	}
	if perHour[12] <= perHour[10] || perHour[18] <= perHour[15] || perHour[3]*20 >= perHour[12] {
		t.Errorf("no lunch/after-work peak or a busy night: %v", perHour)
	}
	// A long tail: the most popular store has many times the median store's transactions.
	counts := map[string]int{}
	for _, tx := range a {
		counts[tx.Store]++
	}
	if counts["S0000"] < 5*counts["S0050"] {
		t.Errorf("store popularity is flat: S0000 %d, S0050 %d", counts["S0000"], counts["S0050"])
	}
}
