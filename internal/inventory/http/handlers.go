package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

func (a *API) getStock() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store, sku := r.PathValue("store"), r.PathValue("sku")
		if err := errors.Join(jaego.CheckStore(store), jaego.CheckSKU(sku)); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		st, err := a.store.Get(ctx, store, sku)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.sourceHeaders(ctx, w, st.Source)
		httpx.WriteJSONBytes(w, http.StatusOK, st.AppendJSON(make([]byte, 0, 256)))
	})
}

// lookupAnswer is the answer of both bulk lookups: found records and the misses, each in
// request order.
type lookupAnswer struct {
	Items   []inventory.Stock `json:"items"`
	Missing []string          `json:"missing"`
}

func (a *API) storeStock() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store := r.PathValue("store")
		skus, err := listParam(r, "sku", jaego.CheckSKU)
		if err == nil {
			err = jaego.CheckStore(store)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		keys := make([]inventory.Key, len(skus))
		for i, sku := range skus {
			keys[i] = inventory.Key{Store: store, SKU: sku}
		}
		a.lookup(w, r, keys, skus)
	})
}

func (a *API) skuStock() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		stores, err := listParam(r, "store", jaego.CheckStore)
		if err == nil {
			err = jaego.CheckSKU(sku)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		keys := make([]inventory.Key, len(stores))
		for i, store := range stores {
			keys[i] = inventory.Key{Store: store, SKU: sku}
		}
		a.lookup(w, r, keys, stores)
	})
}

func (a *API) lookup(w http.ResponseWriter, r *http.Request, keys []inventory.Key, names []string) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	found, err := a.store.GetMany(ctx, keys)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(found) > 0 {
		a.sourceHeaders(ctx, w, found[0].Stock.Source)
	}
	httpx.WriteJSONBytes(w, http.StatusOK, appendLookup(make([]byte, 0, 64+200*len(found)), found, names))
}

// appendLookup appends the lookupAnswer of found (names[i] is the key of found[i] as the
// caller named it), as encoding/json would (TestLookupAnswerJSON).
func appendLookup(b []byte, found []inventory.Lookup, names []string) []byte {
	b = append(b, `{"items":[`...)
	n := 0
	for _, f := range found {
		if f.Found {
			if n > 0 {
				b = append(b, ',')
			}
			b, n = f.Stock.AppendJSON(b), n+1
		}
	}
	b = append(b, `],"missing":[`...)
	n = 0
	for i, f := range found {
		if !f.Found {
			if n > 0 {
				b = append(b, ',')
			}
			b, n = inventory.AppendJSONString(b, names[i]), n+1
		}
	}
	return append(b, "]}"...)
}

// listParam reads a repeated and/or comma-separated query parameter, in order, without
// repeats, checking each value.
func listParam(r *http.Request, name string, check func(string) error) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range r.URL.Query()[name] {
		for _, id := range strings.Split(v, ",") {
			if err := check(id); err != nil {
				return nil, err
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	switch {
	case len(out) == 0:
		return nil, jaego.Invalidf(name, "give at least one %s (?%s=A&%s=B or ?%s=A,B)", name, name, name, name)
	case len(out) > MaxLookup:
		return nil, jaego.Invalidf(name, "at most %d values of %s per request, got %d", MaxLookup, name, len(out))
	}
	return out, nil
}

// resultJSON is one event's outcome on the wire.
type resultJSON struct {
	EventID string           `json:"event_id"`
	Status  inventory.Status `json:"status"`
	Code    jaego.Code       `json:"code,omitempty"`
	Error   string           `json:"error,omitempty"`
	Stock   *inventory.Stock `json:"stock,omitempty"`
}

func toJSON(r inventory.Result) resultJSON {
	out := resultJSON{EventID: r.EventID, Status: r.Status}
	if r.Err != nil {
		out.Code, out.Error = jaego.CodeOf(r.Err), r.Err.Error()
	}
	if r.Stock.Version > 0 || r.Status == inventory.Applied {
		st := r.Stock
		out.Stock = &st
	}
	return out
}

// eventsAnswer is the answer of POST /v1/events. For a single event the one result is
// also given at the top level, so `status` and `stock` can be read without indexing.
type eventsAnswer struct {
	Results []resultJSON `json:"results"`
	*resultJSON
}

func (a *API) postEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, single, err := decodeEvents(w, r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		results, err := a.store.Apply(ctx, events)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ans := eventsAnswer{Results: make([]resultJSON, len(results))}
		for i, res := range results {
			ans.Results[i] = toJSON(res)
		}
		if single {
			res := results[0]
			if res.Err != nil {
				p := problemOf(res.Err)
				p.Extra["event_id"] = res.EventID
				if res.Stock.Version > 0 {
					p.Extra["stock"] = res.Stock
				}
				httpx.WriteProblem(w, p)
				return
			}
			ans.resultJSON = &ans.Results[0]
		}
		httpx.WriteJSON(w, http.StatusOK, ans)
	})
}

// decodeEvents reads one event or {"events":[…]}. A batch with any invalid event is
// refused whole, with every problem listed, so bad input never changes anything.
func decodeEvents(w http.ResponseWriter, r *http.Request) (events []inventory.Event, single bool, err error) {
	body, err := httpx.ReadBody(w, r)
	if err != nil {
		return nil, false, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, false, jaego.Errorf(jaego.CodeInvalidJSON, "body must be one event object or {\"events\":[…]}")
	}
	raw, isBatch := top["events"]
	if !isBatch {
		e, err := inventory.DecodeEvent(body)
		if err != nil {
			return nil, false, err
		}
		return []inventory.Event{e}, true, nil
	}
	if len(top) != 1 {
		return nil, false, jaego.Invalidf("events", "a batch body has only the field \"events\"")
	}
	var batch struct {
		Events json.RawMessage `json:"events"`
	}
	if err := jaego.StrictUnmarshal(body, &batch); err != nil { // {"events":[…],"events":[…]}
		return nil, false, err
	}
	var raws []json.RawMessage
	if err := jaego.StrictUnmarshal(raw, &raws); err != nil {
		return nil, false, jaego.Invalidf("events", "events must be an array of event objects")
	}
	if len(raws) == 0 || len(raws) > MaxBatch {
		return nil, false, jaego.Invalidf("events", "a batch has 1 to %d events, got %d", MaxBatch, len(raws))
	}
	events = make([]inventory.Event, len(raws))
	var problems []map[string]any
	for i, raw := range raws {
		var err error
		if events[i], err = inventory.DecodeEvent(raw); err != nil {
			p := map[string]any{"index": i, "detail": err.Error()}
			if events[i].EventID != "" {
				p["event_id"] = events[i].EventID
			}
			var de *jaego.Error
			if errors.As(err, &de) && de.Field != "" {
				p["field"] = de.Field
			}
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return nil, false, &batchError{problems: problems}
	}
	return events, false, nil
}

type batchError struct{ problems []map[string]any }

func (b *batchError) Error() string {
	return fmt.Sprintf("%d of the events are invalid; none was applied", len(b.problems))
}

// problemOf is httpx.ProblemOf with the inventory's batch errors and retry advice.
func problemOf(err error) httpx.Problem {
	var be *batchError
	if errors.As(err, &be) {
		return httpx.Problem{Status: http.StatusBadRequest, Code: string(jaego.CodeInvalid), Detail: be.Error(),
			Extra: map[string]any{"errors": be.problems}}
	}
	p := httpx.ProblemOf(err)
	switch {
	case p.Code == "timeout":
		p.Detail = "the stock store did not answer in time; retrying with the same event ids is safe"
	case p.Code == string(jaego.CodeUnavailable):
		p.Detail = "the stock store is unavailable; retrying with the same event ids is safe"
	}
	return p
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemOf(err)
	if p.Status >= 500 {
		a.log.ErrorContext(r.Context(), "inventory request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httpx.WriteProblem(w, p)
}

// sourceHeaders says where an answer's records come from (design §8): X-Stock-Source, and
// for the durable copy X-Stock-As-Of, the time up to which it holds every change.
func (a *API) sourceHeaders(ctx context.Context, w http.ResponseWriter, source string) {
	if source == "" {
		return
	}
	w.Header().Set("X-Stock-Source", source)
	if source != inventory.SourceFallback || a.copy == nil {
		return
	}
	if p, err := a.copy.Position(ctx); err == nil && !p.AsOf.IsZero() {
		w.Header().Set("X-Stock-As-Of", p.AsOf.UTC().Format(time.RFC3339Nano))
	}
}
