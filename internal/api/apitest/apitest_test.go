package apitest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/api/apitest"
)

// The transport lets a conforming answer through and turns any mismatch (a missing
// required field, a wrong type, an undocumented status) into an error.
func TestTransportValidates(t *testing.T) {
	answer := ""
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	c := &http.Client{Transport: apitest.Transport{}}
	get := func() error {
		resp, err := c.Get(srv.URL + "/v1/stores/S1/skus/A")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	answer = `{"store":"S1","sku":"A","on_hand":3,"reserved":0,"safety":0,"available":3,"version":1,"updated_at":"2026-11-25T10:00:00Z","source":"primary"}`
	if err := get(); err != nil {
		t.Fatalf("a conforming record: %v", err)
	}
	for _, bad := range []string{
		`{"store":"S1","sku":"A"}`, // required fields missing
		`{"store":"S1","sku":"A","on_hand":"3","reserved":0,"safety":0,"available":3,"version":1,"updated_at":"2026-11-25T10:00:00Z"}`, // wrong type
		`{"store":"S1","sku":"A","on_hand":3,"reserved":0,"safety":0,"available":3,"version":1,"updated_at":"2026-11-25T10:00:00Z","source":"cache"}`,
	} {
		answer = bad
		if err := get(); err == nil || !strings.Contains(err.Error(), "openapi.json") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	status, answer = 418, `{}`
	if err := get(); err == nil {
		t.Error("an undocumented status passed")
	}
}

// A path the document lacks may only answer a 404 or 405 problem.
func TestUndocumentedPaths(t *testing.T) {
	status, ctype := 404, "application/problem+json"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"type":"urn:problem-type:jaego:not_found","title":"Not Found","status":404,"code":"not_found"}`))
	}))
	defer srv.Close()
	c := &http.Client{Transport: apitest.Transport{}}
	get := func() error {
		resp, err := c.Get(srv.URL + "/v1/nowhere")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("a 404 problem on an unknown path: %v", err)
	}
	status, ctype = 200, "application/json"
	if err := get(); err == nil {
		t.Error("a 200 on a path the document lacks passed")
	}
}
