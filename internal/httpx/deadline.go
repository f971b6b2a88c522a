package httpx

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// A request's deadline must hold whatever the stores do (design §11). A handler bounds its
// store calls with a context, but a client library can still hold a call past it: rueidis
// queues a command in a ring before it sends it, and when Redis hangs and the ring is full a
// caller waits for room whatever its context says, until the connection is given up (10 s).
// Within answers for such a handler: it runs it aside, and at the deadline answers 504 and
// drops what the handler writes later.

// Within runs h with a buffered answer; h's answer goes out if it finishes within d, else a
// 504 problem (timeout) goes out at d, whole (with its length) and flushed, with
// "Connection: close", while h still holds the request; h's later writes go nowhere. h runs
// in the request's goroutine (a panic reaches Instrument, which answers 500); what bounds
// the answer is a timer, not a goroutine per request (that cost ~3.5 µs a request:
// docs/benchmarks.md). Not for streaming answers (NDJSON, SSE): see Abandonable.
func Within(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := answers.Get().(*bufferedAnswer)
		var mu sync.Mutex
		answered := false
		t := time.AfterFunc(d, func() {
			mu.Lock()
			defer mu.Unlock()
			if answered {
				return
			}
			answered = true
			p := &bufferedAnswer{header: w.Header()}
			WriteProblem(p, ProblemOf(context.DeadlineExceeded))
			w.Header().Set("Content-Length", strconv.Itoa(p.body.Len()))
			w.Header().Set("Connection", "close") // h holds the connection until it returns
			w.WriteHeader(p.code())
			_, _ = w.Write(p.body.Bytes())
			_ = http.NewResponseController(w).Flush()
		})
		// finish stops the timer and reports whether the answer is still h's to give.
		finish := func() bool {
			t.Stop()
			mu.Lock()
			defer mu.Unlock()
			mine := !answered
			answered = true
			return mine
		}
		returned := false
		defer func() {
			if !returned { // h panicked: no 504 after Instrument's 500
				finish()
			}
		}()
		h.ServeHTTP(buf, r)
		returned = true
		if finish() {
			for k, v := range buf.header {
				w.Header()[k] = v
			}
			w.WriteHeader(buf.code())
			_, _ = w.Write(buf.body.Bytes())
		}
		buf.reset()
		answers.Put(buf)
	})
}

// answers are the buffers Within lends its handlers.
var answers = sync.Pool{New: func() any { return &bufferedAnswer{header: http.Header{}} }}

// bufferedAnswer is a ResponseWriter that keeps the answer until Within sends it.
type bufferedAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedAnswer) Header() http.Header { return b.header }

func (b *bufferedAnswer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedAnswer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedAnswer) reset() {
	clear(b.header)
	b.status = 0
	b.body.Reset()
}

func (b *bufferedAnswer) code() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// Abandonable is the streaming form of Within: Run starts the stream aside; Wait returns
// when the stream wrote its first bytes (Started) or ended, or at d, when the caller answers
// 504 and every later Allow answers false, so that the stream writes nothing more.
type Abandonable struct {
	mu        sync.Mutex
	abandoned bool
	started   chan struct{}
	once      sync.Once
	done      chan struct{}
}

// NewAbandonable returns an Abandonable for one stream.
func NewAbandonable() *Abandonable {
	return &Abandonable{started: make(chan struct{}), done: make(chan struct{})}
}

// Run runs stream aside; Done is closed when it returns.
func (a *Abandonable) Run(stream func()) {
	go func() {
		defer close(a.done)
		stream()
	}()
}

// Started tells Wait that the stream began its answer (the caller owns it from then on).
func (a *Abandonable) Started() { a.once.Do(func() { close(a.started) }) }

// Allow reports whether the stream may still write; the stream calls it (and keeps the
// lock, released by the returned func) around every write.
func (a *Abandonable) Allow() (bool, func()) {
	a.mu.Lock()
	return !a.abandoned, a.mu.Unlock
}

// Wait waits for the stream to start or end; past d it abandons the stream and reports
// false: the caller answers 504 itself.
func (a *Abandonable) Wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.started:
		<-a.done
		return true
	case <-a.done:
		return true
	case <-t.C:
		a.mu.Lock()
		defer a.mu.Unlock()
		select {
		case <-a.started: // it started meanwhile: it owns the answer
			a.mu.Unlock()
			<-a.done
			a.mu.Lock()
			return true
		case <-a.done:
			return true
		default:
		}
		a.abandoned = true
		return false
	}
}
