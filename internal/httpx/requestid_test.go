package httpx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/testenv"
)

// Every answer has a request id, the caller's when sane; the log lines of the request and
// its problem body carry it; the access log has one line per request with its duration in
// milliseconds.
func TestRequestIDs(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(httpx.ContextHandler{Handler: slog.NewJSONHandler(&logs, nil)})
	mux := http.NewServeMux()
	mux.Handle("GET /ok", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handling")
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"id": httpx.RequestID(r.Context())})
	}))
	mux.Handle("GET /fail", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.Fail(w, r, log, errors.New("a bug"))
	}))
	srv := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), log, httpx.Options{AccessLog: true}))
	defer srv.Close()

	get := func(path, id string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if id != "" {
			req.Header.Set(httpx.RequestIDHeader, id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	resp, body := get("/ok", "")
	made := resp.Header.Get(httpx.RequestIDHeader)
	if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(made) || body["id"] != made {
		t.Errorf("a new id: header %q, seen by the handler %v", made, body["id"])
	}
	resp, _ = get("/ok", "shop-7f3a")
	if got := resp.Header.Get(httpx.RequestIDHeader); got != "shop-7f3a" {
		t.Errorf("the caller's id: %q", got)
	}
	resp, _ = get("/ok", "bad id with spaces")
	if got := resp.Header.Get(httpx.RequestIDHeader); got == "bad id with spaces" || got == "" {
		t.Errorf("an id with spaces is replaced, got %q", got)
	}
	resp, body = get("/fail", "trace-42")
	if resp.StatusCode != 500 || body["request_id"] != "trace-42" || body["detail"] != "internal error" {
		t.Errorf("problem body: %d %v", resp.StatusCode, body)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	byID := map[string][]string{}
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		byID[id] = append(byID[id], l["msg"].(string))
		if l["msg"] == "request" {
			if _, ok := l["duration_ms"].(float64); !ok || l["route"] == nil {
				t.Errorf("access log line %v", l)
			}
		}
	}
	if got := strings.Join(byID[made], ","); got != "handling,request" {
		t.Errorf("log lines of the first request: %q", got)
	}
	if got := strings.Join(byID["trace-42"], ","); got != "request failed,request" {
		t.Errorf("log lines of the failing request: %q (all: %v)", got, byID)
	}
}

// A malformed query string is a 400, never half-read.
func TestMalformedQuery(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /ok", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"cursor": r.URL.Query().Get("cursor")})
	}))
	srv := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for q, want := range map[string]int{"cursor=%%%garbage": 400, "a=1&b=%zz": 400, "cursor=abc%20d": 200, "": 200} {
		resp, err := http.Get(srv.URL + "/ok?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || (want == 400 && resp.Header.Get("Content-Type") != "application/problem+json") {
			t.Errorf("?%s: %d %s, want %d", q, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
}

// Metric labels take known values only: a request with a made-up method (a 5,000-character
// one was accepted) counts under method "other", so no client can create series.
func TestMethodLabelsAreBounded(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /ok", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(httpx.Instrument(mux, reg, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for _, m := range []string{"GET", "M12345", strings.Repeat("X", 5000), "get", "POST"} {
		req, _ := http.NewRequest(m, srv.URL+"/ok", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A request is counted just after its answer went out: wait for all five.
	methods := map[string]float64{}
	testenv.Eventually(t, "five requests counted", 10*time.Second, func() bool {
		methods = methodCounts(t, reg)
		total := 0.0
		for _, v := range methods {
			total += v
		}
		return total >= 5
	}, func() string { return fmt.Sprint(methods) })
	want := map[string]float64{"GET": 1, "POST": 1, "other": 3}
	if len(methods) != len(want) {
		t.Fatalf("method labels %v, want %v", methods, want)
	}
	for k, v := range want {
		if methods[k] != v {
			t.Fatalf("method labels %v, want %v", methods, want)
		}
	}
}

// methodCounts sums jaego_http_requests_total by its method label.
func methodCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "jaego_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					methods[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return methods
}
