package httpx

import (
	"bytes"
	"context"
	"net/http"
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
// 504 problem (timeout) does and h's later writes go nowhere. A panic in h is raised again
// in the caller's goroutine, where Instrument turns it into a 500. Not for streaming
// answers (NDJSON, SSE): see Abandonable.
func Within(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := &bufferedAnswer{header: http.Header{}}
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			h.ServeHTTP(buf, r)
		}()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case p := <-done:
			if p != nil {
				panic(p)
			}
			for k, v := range buf.header {
				w.Header()[k] = v
			}
			w.WriteHeader(buf.code())
			_, _ = w.Write(buf.body.Bytes())
		case <-t.C:
			WriteProblem(w, ProblemOf(context.DeadlineExceeded))
		}
	})
}

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
