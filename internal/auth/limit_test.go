package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/jaego"
)

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]auth.Limit{
		"none": {}, "": {}, "200/s,burst=400": {Rate: 200, Burst: 400}, "10/s": {Rate: 10, Burst: 10},
		"120/m": {Rate: 2, Burst: 2}, "0.5/s,burst=3": {Rate: 0.5, Burst: 3},
	} {
		if got, err := auth.ParseLimit(in); err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"200", "200/h", "-1/s", "0/s", "NaN/s", "10/s,burst=0", "10/s,bust=3", "10/s,burst=x"} {
		if _, err := auth.ParseLimit(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A key's bucket lets Burst requests through at once, then refuses with a retry time and
// the IETF headers; it refills at Rate. Exactly Burst of many concurrent requests pass.
func TestLimitersTake(t *testing.T) {
	var ls auth.Limiters
	now := time.Unix(1_000_000, 0)
	l := auth.Limit{Rate: 10, Burst: 20}
	// 64 requests at once at instant at: how many pass, how many are refused.
	burst := func(at time.Time) (passed, refusedN int64) {
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				err := ls.Take("shop", l, at, http.Header{})
				var rl *auth.RateLimited
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &rl) && errors.Is(err, &jaego.Error{Code: jaego.CodeRateLimited}) && rl.RetryAfter() > 0:
					refused.Add(1)
				default:
					t.Errorf("take: %v", err)
				}
			})
		}
		wg.Wait()
		return ok.Load(), refused.Load()
	}
	if ok, refused := burst(now); ok != 20 || refused != 44 {
		t.Fatalf("%d passed and %d refused, want 20 and 44", ok, refused)
	}
	h := http.Header{}
	if err := ls.Take("shop", l, now.Add(150*time.Millisecond), h); err != nil {
		t.Fatalf("after 150 ms at 10/s, one token is back: %v", err)
	}
	if got := h.Get("RateLimit-Policy"); got != `"key";q=20;w=2` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := h.Get("RateLimit"); got != `"key";r=0;t=2` {
		t.Errorf("RateLimit %q", got)
	}
	// A refused request takes nothing: a second after the first burst, ten tokens came back
	// and one was taken, so nine of another 64 at once pass, exactly.
	if ok, refused := burst(now.Add(time.Second)); ok != 9 || refused != 55 {
		t.Errorf("a second later: %d passed and %d refused, want 9 and 55", ok, refused)
	}
	if err := ls.Take("other", l, now, http.Header{}); err != nil {
		t.Errorf("another key has its own bucket: %v", err)
	}
	if err := ls.Take("shop", auth.Limit{}, now, h); err != nil {
		t.Errorf("no limit refused: %v", err)
	}
}

// The keys file's rate= wins over the default; the scheme is case-insensitive.
func TestGuardLimitsPerKey(t *testing.T) {
	fast, fastLine, _ := auth.NewKey("fast", []auth.Scope{auth.Read})
	slow, slowLine, _ := auth.NewKey("slow", []auth.Scope{auth.Read})
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(fastLine+" rate=1000/s,burst=1000\n"+slowLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := auth.NewGuard(path)
	if err != nil {
		t.Fatal(err)
	}
	g.SetDefaultLimit(auth.Limit{Rate: 1, Burst: 2})
	count := func(key, scheme string) (passed int) {
		for range 10 {
			r := httptest.NewRequest("GET", "/v1/stores/S1/stock", nil)
			r.Header.Set("Authorization", scheme+" "+key)
			name, err := g.Authorize(r)
			if err != nil {
				t.Fatalf("%s %s: %v", scheme, key[:5], err)
			}
			if g.Limit(name, http.Header{}) == nil {
				passed++
			}
		}
		return passed
	}
	if n := count(fast, "bearer"); n != 10 {
		t.Errorf("fast key: %d of 10 passed", n)
	}
	if n := count(slow, "BEARER"); n != 2 {
		t.Errorf("slow key (the default 1/s, burst 2): %d of 10 passed", n)
	}
	r := httptest.NewRequest("GET", "/v1/stores/S1/stock", nil)
	r.Header.Set("Authorization", "Basic "+fast)
	if _, err := g.Authorize(r); !strings.Contains(err.Error(), "Bearer") {
		t.Errorf("another scheme: %v", err)
	}
	if _, err := auth.Parse(strings.NewReader(slowLine + " rate=fast")); err == nil {
		t.Error("a malformed rate= was accepted")
	}
}
