package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSenderAnswers: what a receiver answers nobody expected: a redirect (not followed), a
// body of megabytes (64 KiB read), headers of a megabyte (refused, not read), an answer
// that never ends (the timeout), a 2xx; and a loopback target without an allowed network
// (refused at the dial).
func TestSenderAnswers(t *testing.T) {
	followed := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // read whole, so that the server hears the client go
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		case "/elsewhere":
			followed <- struct{}{}
		case "/big-body":
			w.Write([]byte(strings.Repeat("x", 8<<20)))
		case "/big-headers":
			for i := range 64 {
				w.Header().Set("X-Pad-"+strings.Repeat("p", i%8)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("h", 16<<10))
			}
			w.WriteHeader(http.StatusOK)
		case "/hang":
			<-r.Context().Done()
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	s := NewSender(AllowLoopback(), 500*time.Millisecond, "test")
	defer s.Close()
	ctx := context.Background()
	for _, c := range []struct {
		path   string
		status int
		fails  string
	}{
		{"/ok", 204, ""},
		{"/redirect", 307, "redirects are not followed"},
		{"/big-body", 200, ""},
		{"/big-headers", 0, "header"},
		{"/hang", 0, "no answer within"},
	} {
		status, err := s.Send(ctx, srv.URL+c.path, nil, []byte(`{}`))
		if status != c.status || (c.fails == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.fails)) {
			t.Errorf("%s: %d %v; want %d and an error with %q", c.path, status, err, c.status, c.fails)
		}
	}
	select {
	case <-followed:
		t.Error("the redirect was followed")
	default:
	}
	none, _ := ParseAllowNets("")
	strict := NewSender(none, time.Second, "test")
	defer strict.Close()
	if status, err := strict.Send(ctx, srv.URL+"/ok", nil, []byte(`{}`)); status != 0 || err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a loopback target without an allowed network: %d %v", status, err)
	}
}
