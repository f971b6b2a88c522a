// Package httpxtest holds what tests of jaego's HTTP adapters share.
package httpxtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/api/apitest"
)

// client checks every answer against openapi.json.
var client = &http.Client{Transport: apitest.Transport{}}

// Call sends a request with body and decodes the answer, which must be a JSON object that
// matches openapi.json; an error status must come as application/problem+json.
func Call(t testing.TB, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %q is not a JSON object", method, url, raw)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: a %d that is not problem+json", method, url, resp.StatusCode)
	}
	return resp.StatusCode, m
}
