package httpx

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Readiness answers /readyz: 503 "starting" until Started, then each dependency is pinged
// in order, within a second in all. A dependency that does not answer makes the instance
// not ready (its Down problem), unless its Fallback answers: then the instance stays ready
// and says it is degraded (the answer names what is down, never where it is: the error
// goes to the log).
type Readiness struct {
	started atomic.Bool
	log     *slog.Logger
	mu      sync.Mutex
	deps    []Dependency
}

// Dependency is one thing an instance needs to be ready.
type Dependency struct {
	Name     string // in the log
	Ping     func(ctx context.Context) error
	Down     *jaego.Error // the answer when Ping fails and no Fallback answers
	Fallback func(ctx context.Context) error
	Degraded map[string]string // the answer's fields while the Fallback serves
}

// NewReadiness checks deps, in order.
func NewReadiness(log *slog.Logger, deps ...Dependency) *Readiness {
	return &Readiness{log: log, deps: deps}
}

// Add checks d too, after the others (each part of a server adds its own as it is set up).
func (r *Readiness) Add(d Dependency) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deps = append(r.deps, d)
}

// Started marks startup work done (say, the dev seed).
func (r *Readiness) Started() { r.started.Store(true) }

func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !r.started.Load() {
		Fail(w, req, nil, jaego.Errorf(jaego.CodeStarting, "jaego is still starting"))
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), time.Second)
	defer cancel()
	answer := map[string]string{"status": "ready"}
	r.mu.Lock()
	deps := slices.Clone(r.deps)
	r.mu.Unlock()
	for _, d := range deps {
		err := d.Ping(ctx)
		if err == nil {
			continue
		}
		r.log.WarnContext(req.Context(), "not answering: "+d.Name, "err", err)
		if d.Fallback == nil || d.Fallback(ctx) != nil {
			Fail(w, req, nil, d.Down)
			return
		}
		answer = map[string]string{"status": "degraded"}
		for k, v := range d.Degraded {
			answer[k] = v
		}
	}
	WriteJSON(w, http.StatusOK, answer)
}
