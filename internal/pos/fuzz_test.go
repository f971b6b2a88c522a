package pos_test

import (
	"errors"
	"testing"

	"github.com/jaego/jaego/internal/pos"
)

// FuzzDecode: a POS line either decodes to a transaction whose stock events all pass
// validation, or fails with ErrMalformed — never a panic, never an invalid event on Kafka.
// Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"txn_id":"S001-20261122-0000001","store":"S001","at":"2026-11-22T01:02:03Z","type":"sale","lines":[{"sku":"8809461234567","qty":2,"price":12000}]}`,
		`{"txn_id":"S001-20261122-0000002","store":"S001","at":"2026-11-22T01:02:03Z","type":"return","lines":[{"sku":"8809461234567","qty":1,"price":12000},{"kind":"fee","qty":1,"price":500}]}`,
		`{"txn_id":"S001-1","store":"S001","at":"2026-11-22T01:02:03Z","type":"z_report"}`,
		`{"txn_id":"x","store":"S 1"}`, `{}`, `{"txn_id":"a"} {"txn_id":"b"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		tx, err := pos.Decode(line)
		if err != nil {
			if !errors.Is(err, pos.ErrMalformed) {
				t.Fatalf("%q: %v does not wrap ErrMalformed", line, err)
			}
			return
		}
		for _, e := range tx.Events() {
			if err := e.Validate(); err != nil {
				t.Fatalf("%q gave an invalid event %+v: %v", line, e, err)
			}
		}
	})
}
