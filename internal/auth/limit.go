package auth

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jaego/jaego/internal/jaego"
)

// Limit is a key's request rate (design §11): a token bucket that refills Rate requests a
// second and holds Burst at most. The zero Limit is no limit. It is enforced per instance:
// n instances behind a balancer let a key through at up to n × Rate.
type Limit struct {
	Rate  float64
	Burst int
}

// None reports whether l limits nothing.
func (l Limit) None() bool { return l.Rate <= 0 }

func (l Limit) String() string {
	if l.None() {
		return "none"
	}
	return fmt.Sprintf("%s/s,burst=%d", strconv.FormatFloat(l.Rate, 'f', -1, 64), l.Burst)
}

// ParseLimit reads "200/s,burst=400" (also /m for a minute; burst defaults to one
// second's worth, at least 1) or "none".
func ParseLimit(s string) (Limit, error) {
	if s == "" || s == "none" {
		return Limit{}, nil
	}
	bad := fmt.Errorf("rate limit %q: want N/s or N/m, optionally ,burst=N (or none)", s)
	r, burst, hasBurst := strings.Cut(s, ",")
	n, per, ok := strings.Cut(r, "/")
	v, err := strconv.ParseFloat(n, 64)
	if !ok || err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return Limit{}, bad
	}
	switch per {
	case "s":
	case "m":
		v /= 60
	default:
		return Limit{}, bad
	}
	l := Limit{Rate: v, Burst: max(1, int(math.Ceil(v)))}
	if hasBurst {
		b, ok := strings.CutPrefix(burst, "burst=")
		n, err := strconv.Atoi(b)
		if !ok || err != nil || n < 1 {
			return Limit{}, bad
		}
		l.Burst = n
	}
	return l, nil
}

// Limiters holds one token bucket per key name, made on first use with the key's limit (or
// the default) and made anew when a reload changes that limit.
type Limiters struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	limit Limit
	l     *rate.Limiter
}

// RateLimited is a request over its key's limit: 429 rate_limited with Retry-After.
type RateLimited struct {
	Key   string
	after time.Duration
}

func (e *RateLimited) Error() string {
	return fmt.Sprintf("key %s is over its rate limit; retry after %v", e.Key, e.after.Round(time.Millisecond))
}

// Unwrap makes it a jaego error with code rate_limited.
func (e *RateLimited) Unwrap() error {
	return &jaego.Error{Code: jaego.CodeRateLimited, Detail: e.Error()}
}

// RetryAfter is when the key has a token again.
func (e *RateLimited) RetryAfter() time.Duration { return e.after }

// Take takes a token from key's bucket of limit at now, sets the IETF RateLimit-Policy and
// RateLimit headers (draft-ietf-httpapi-ratelimit-headers: quota q in a window of w
// seconds; r left, full again in t seconds) on h, and answers *RateLimited when there is
// none. A zero limit takes nothing and says nothing.
func (ls *Limiters) Take(key string, limit Limit, now time.Time, h http.Header) error {
	if limit.None() {
		return nil
	}
	ls.mu.Lock()
	if ls.buckets == nil {
		ls.buckets = map[string]*bucket{}
	}
	b := ls.buckets[key]
	if b == nil || b.limit != limit {
		b = &bucket{limit: limit, l: rate.NewLimiter(rate.Limit(limit.Rate), limit.Burst)}
		ls.buckets[key] = b
	}
	ls.mu.Unlock()
	// AllowN takes a token only when there is one. (A reservation cancelled when it had to
	// wait gave back less than it took when others reserved meanwhile: requests refused at
	// once drove the bucket below empty, and the key waited longer than its rate says.)
	allowed := b.l.AllowN(now, 1)
	left := b.l.TokensAt(now)
	var wait time.Duration
	if !allowed { // until a whole token is back; at least a millisecond
		wait = max(time.Duration(math.Ceil((1-left)/limit.Rate*float64(time.Second))), time.Millisecond)
	}
	window := math.Ceil(float64(limit.Burst) / limit.Rate)
	h.Set("RateLimit-Policy", fmt.Sprintf(`"key";q=%d;w=%d`, limit.Burst, int(window)))
	full := math.Ceil((float64(limit.Burst) - left) / limit.Rate)
	h.Set("RateLimit", fmt.Sprintf(`"key";r=%d;t=%d`, max(0, int(math.Floor(left))), max(0, int(full))))
	if !allowed {
		return &RateLimited{Key: key, after: wait}
	}
	return nil
}
