package jaego_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/jaego/jaego/internal/jaego"
)

func TestStrictUnmarshal(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type doc struct {
		X     string  `json:"x"`
		N     inner   `json:"n"`
		Items []inner `json:"items"`
	}
	for _, ok := range []string{`{"x":"1","n":{"a":1},"items":[{"a":1},{"a":2}]}`, `{"items":[{"a":1},{"a":1}],"x":"a"}`} {
		var d doc
		if err := jaego.StrictUnmarshal([]byte(ok), &d); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, field := range map[string]string{
		`{"x":"1","x":"2"}`:                    "x",
		`{"n":{"a":1,"a":2}}`:                  "a",
		`{"items":[{"a":1},{"a":2,"a":3}]}`:    "a",
		`{"n":{"a":1},"items":[],"n":{"a":2}}`: "n",
		`{"x":"1","items":[{"a":1}],"x":"1"}`:  "x",
	} {
		var d doc
		err := jaego.StrictUnmarshal([]byte(bad), &d)
		var e *jaego.Error
		if !errors.As(err, &e) || e.Code != jaego.CodeInvalidJSON || e.Field != field {
			t.Errorf("%s: %v, want invalid_json on %q", bad, err, field)
		}
	}
	// Control characters in any string, escaped or raw; an escaped backslash before n is text.
	for bad, field := range map[string]string{
		`{"x":"a\u0000b"}`: "x", `{"x":"line\nline"}`: "x", `{"x":"\t"}`: "x", `{"n":{"a":1},"items":[],"x":"\u001F"}`: "x",
		`{"x":"del\u007f"}`: "x", "{\"x\":\"del\x7f\"}": "x", `{"x":"c1\u0085"}`: "x", "{\"x\":\"c1\u0085\"}": "x",
	} {
		var d doc
		err := jaego.StrictUnmarshal([]byte(bad), &d)
		var e *jaego.Error
		if !errors.As(err, &e) || e.Code != jaego.CodeInvalidJSON || e.Field != field {
			t.Errorf("%q: %v, want invalid_json on %q", bad, err, field)
		}
	}
	for _, ok := range []string{`{"x":"back\\nslash"}`, `{"x":"\u00e9t\u00E9 \"quoted\" \/"}`, `{"x":"마스크 3+1"}`} {
		var d doc
		if err := jaego.StrictUnmarshal([]byte(ok), &d); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	// "{}}" and friends: a stray closer after the value (FuzzDecodeSpec found it crashing the key scan).
	for _, bad := range []string{`{"x":`, `{"y":1}`, `{"x":"1"} {}`, `[`, `{}}`, `{"x":"1"}]`, `{} }`, "{}\n}"} {
		var d doc
		if err := jaego.StrictUnmarshal([]byte(bad), &d); jaego.CodeOf(err) != jaego.CodeInvalidJSON {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// BenchmarkStrictUnmarshal: a stock event through the strict decoder (unknown fields,
// duplicate names, trailing data refused) against encoding/json's plain Unmarshal of the
// same event, the baseline: go test -bench Unmarshal ./internal/jaego.
func BenchmarkStrictUnmarshal(b *testing.B) {
	event := []byte(`{"event_id":"pos-S001-20261122-000123-1","type":"sale","store":"S001","sku":"8809461234567","qty":2,"occurred_at":"2026-11-22T01:02:03Z","source":"pos"}`)
	type ev struct {
		EventID    string `json:"event_id"`
		Type       string `json:"type"`
		Store      string `json:"store"`
		SKU        string `json:"sku"`
		Qty        int64  `json:"qty"`
		OccurredAt string `json:"occurred_at"`
		Source     string `json:"source"`
	}
	b.Run("encoding/json Unmarshal (baseline)", func(b *testing.B) {
		for b.Loop() {
			var e ev
			if err := json.Unmarshal(event, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("StrictUnmarshal", func(b *testing.B) {
		for b.Loop() {
			var e ev
			if err := jaego.StrictUnmarshal(event, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
