package httpx_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/testenv"
)

// Within answers what the handler answered when it is in time, and a 504 problem at the
// deadline when it is not (the handler's later writes go nowhere); a panic reaches the
// caller.
func TestWithin(t *testing.T) {
	fast := httpx.Within(time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Test", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	rec := httptest.NewRecorder()
	fast.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 201 || rec.Header().Get("X-Test") != "yes" || rec.Body.String() != `{"ok":true}` {
		t.Fatalf("in time: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
	// Past the deadline, on a real server: the 504 arrives whole while the handler still
	// holds the request (a store call that holds on past its context), and the connection
	// is not reused.
	// ctx bounds the test's waits and the held handler's (cancelled before the server closes).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	release, returned := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(httpx.Within(50*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		select {
		case <-release:
		case <-ctx.Done():
		}
		_, _ = w.Write([]byte("late"))
	})))
	defer srv.Close()
	defer cancel()
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	select {
	case <-returned:
		t.Fatal("the handler returned before it was released")
	default:
	}
	if err != nil || res.StatusCode != 504 || !strings.Contains(string(body), `"timeout"`) || !res.Close {
		t.Fatalf("past the deadline: %d %q (%v), close %v", res.StatusCode, body, err, res.Close)
	}
	close(release)
	testenv.Recv(t, ctx, returned, "the released handler's return")
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("the handler's panic: %v", p)
		}
	}()
	httpx.Within(time.Second, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })).
		ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

// BenchmarkWithin: what bounding an answer costs per request (a goroutine and a buffered
// copy), against the same handler called directly, the baseline of the same run:
//
//	go test -run '^$' -bench Within -count 5 ./internal/httpx
func BenchmarkWithin(b *testing.B) {
	body := []byte(`{"store":"S001","sku":"8809461234567","on_hand":12,"reserved":2,"safety":1,"available":9,"version":17,"updated_at":"2026-11-22T01:02:03.456Z","source":"primary"}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	req := httptest.NewRequest("GET", "/v1/stores/S001/skus/8809461234567", nil)
	for name, handler := range map[string]http.Handler{"direct": h, "within": httpx.Within(2*time.Second, h)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				handler.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
