package http

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Limits of the change feed API.
const (
	DefaultChangeLimit = 1000
	MaxChangeLimit     = 10000
	ndjsonPage         = 1000
)

// parseTime reads RFC 3339 or unix milliseconds.
func parseTime(name, v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, jaego.Invalidf(name, "%s must be RFC 3339 (2026-11-22T01:02:03Z) or unix milliseconds, got %q", name, v)
	}
	return t, nil
}

func (a *API) changes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var from, to time.Time
		var err error
		cursor := q.Get("cursor")
		if v := q.Get("from"); v != "" {
			if from, err = parseTime("from", v); err != nil {
				a.fail(w, r, err)
				return
			}
		} else if cursor == "" {
			a.fail(w, r, jaego.Invalidf("from", "from is required (or a cursor)"))
			return
		}
		if v := q.Get("to"); v != "" {
			if to, err = parseTime("to", v); err != nil {
				a.fail(w, r, err)
				return
			}
		} else if cursor == "" {
			to = inventory.OpenEnd(from) // design §4: no to, an open range that follows the feed
		}
		limit := DefaultChangeLimit
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxChangeLimit {
				a.fail(w, r, jaego.Invalidf("limit", "limit must be 1..%d, got %q", MaxChangeLimit, v))
				return
			}
		}
		if strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
			a.streamChanges(w, r, from, to, cursor)
			return
		}
		httpx.Within(a.timeout+50*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := a.ctx(r)
			defer cancel()
			page, err := a.feed.Changes(ctx, from, to, cursor, limit)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			// {"changes":[…],"next_cursor":"…"}, appended without encoding/json's reflection.
			b := append(make([]byte, 0, 64+len(page.Changes)*220), `{"changes":`...)
			b = inventory.AppendChangesJSON(b, page.Changes)
			b = append(b, `,"next_cursor":`...)
			b = append(inventory.AppendJSONString(b, page.Next), '}')
			httpx.WriteJSONBytes(w, http.StatusOK, b)
		})).ServeHTTP(w, r)
	})
}

// streamChanges writes the whole range as NDJSON, batch by batch (bounded memory), and the
// cursor to resume from in the X-Next-Cursor trailer ("" when the range is complete). A
// stream that breaks has no trailer: the client resumes from its last cursor.
func (a *API) streamChanges(w http.ResponseWriter, r *http.Request, from, to time.Time, cursor string) {
	rc := http.NewResponseController(w)
	var line []byte
	started := false
	// A stream may run long, but never waits longer than the request timeout for its next
	// batch: a hung Redis ends it like any request (a 504 before the first batch). It runs
	// aside, so that even a store call that ignores its context cannot hold the answer.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stalled := time.AfterFunc(a.timeout, func() { cancel(context.DeadlineExceeded) })
	defer stalled.Stop()
	run := httpx.NewAbandonable()
	run.Run(func() {
		next, err := a.feed.StreamChanges(ctx, from, to, cursor, func(batch []inventory.Change) error {
			ok, unlock := run.Allow()
			defer unlock()
			if !ok {
				return context.DeadlineExceeded
			}
			stalled.Reset(a.timeout)
			if !started {
				started = true
				run.Started()
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.Header().Set("Trailer", "X-Next-Cursor")
				w.WriteHeader(http.StatusOK)
			}
			line = line[:0]
			for _, c := range batch {
				line = append(c.AppendJSON(line), '\n')
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
			return rc.Flush()
		})
		ok, unlock := run.Allow()
		defer unlock()
		if !ok {
			return // answered 504 already
		}
		if context.Cause(ctx) == context.DeadlineExceeded {
			err = context.DeadlineExceeded
		}
		if err != nil {
			if !started {
				a.fail(w, r, err) // nothing written yet: a proper problem answer
			} else {
				a.log.ErrorContext(r.Context(), "change stream failed mid-way", "err", err)
			}
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Trailer", "X-Next-Cursor")
			w.WriteHeader(http.StatusOK)
		}
		w.Header().Set("X-Next-Cursor", next)
	})
	if !run.Wait(a.timeout + 50*time.Millisecond) {
		a.fail(w, r, context.DeadlineExceeded)
	}
}

// changeStream is the live tail (design §4): Server-Sent Events from the process's hub,
// one `changes` event per batch — its data {"changes":[…]}, its id the cursor after it —
// so that a client resuming with Last-Event-ID gets exactly what it had not: an event is
// dispatched whole or not at all. Without a cursor it starts at the current end of the
// feed. A subscriber too slow to keep up gets a `dropped` event whose id is where to resume.
func (a *API) changeStream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cursor := r.Header.Get("Last-Event-ID")
		if cursor == "" {
			cursor = r.URL.Query().Get("cursor")
		}
		rc := http.NewResponseController(w)
		write := func(format string, args ...any) error {
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second)) // a stalled client does not hold the handler
			if _, err := fmt.Fprintf(w, format, args...); err != nil {
				return err
			}
			return rc.Flush()
		}
		started := false
		// A hijacked connection is the handler's to close: whenever the stream ends (the
		// client left, a write failed, the subscriber was dropped), the client hears it at
		// once and reconnects, instead of waiting on a silent socket.
		var hijacked net.Conn
		defer func() {
			if hijacked != nil {
				_ = hijacked.Close()
			}
		}()
		// Admitted within the request timeout, or a 504 (a hung Redis while joining).
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		admit := time.AfterFunc(a.timeout, func() { cancel(context.DeadlineExceeded) })
		defer admit.Stop()
		err := a.tail.Follow(ctx, cursor, func() {
			started = true
			admit.Stop()
			// HTTP/1.1: the stream takes over the connection, so net/http's watcher of the
			// request (a goroutine per open request) ends: a subscriber costs one goroutine,
			// and a client that left is noticed by the next write (at most a keep-alive away).
			if conn, brw, err := rc.Hijack(); err == nil {
				hijacked = conn
				write = func(format string, args ...any) error {
					_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := fmt.Fprintf(brw, format, args...); err != nil {
						return err
					}
					return brw.Flush()
				}
				_ = write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"+
					"X-Request-Id: %s\r\nConnection: close\r\n\r\n: jaego change stream\nretry: 1000\n\n", httpx.RequestID(r.Context()))
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			_ = write(": jaego change stream\nretry: 1000\n\n")
		}, func(b inventory.TailBatch) error {
			switch {
			case b.Dropped:
				return write("event: dropped\nid: %s\ndata: {\"cursor\":%q,\"reason\":\"too slow: resume from this cursor\"}\n\n", b.Cursor, b.Cursor)
			case len(b.Changes) == 0:
				return write(": keep-alive\n\n")
			}
			data, err := b.JSON()
			if err != nil {
				return err
			}
			return write("event: changes\nid: %s\ndata: %s\n\n", b.Cursor, data)
		})
		if !started {
			if context.Cause(ctx) == context.DeadlineExceeded {
				err = context.DeadlineExceeded
			}
			a.fail(w, r, err)
			return
		}
		if err != nil && r.Context().Err() == nil {
			a.log.WarnContext(r.Context(), "change stream ended; the client resumes with Last-Event-ID", "err", err)
		}
	})
}

// storeSnapshot answers a store's records and the feed cursor to follow from.
func (a *API) storeSnapshot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store := r.PathValue("store")
		if err := jaego.CheckStore(store); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		cursor, err := a.feed.Position(ctx) // position first, then the records
		if err != nil {
			a.fail(w, r, err)
			return
		}
		items, err := a.snapshots.StoreStock(ctx, store)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if items == nil {
			items = []inventory.Stock{}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"store": store, "items": items, "cursor": cursor})
	})
}

// estateSnapshot pages through every store. The first page takes the feed position; each
// next_page carries it, and every page repeats it as cursor.
func (a *API) estateSnapshot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := a.ctx(r)
		defer cancel()
		token, cursor, _ := strings.Cut(r.URL.Query().Get("page"), "~")
		if r.URL.Query().Get("page") == "" {
			var err error
			if cursor, err = a.feed.Position(ctx); err != nil {
				a.fail(w, r, err)
				return
			}
		} else if cursor == "" {
			a.fail(w, r, &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "page", Detail: "malformed page token"})
			return
		}
		page, err := a.snapshots.Estate(ctx, token)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		next := ""
		if page.Next != "" {
			next = page.Next + "~" + cursor
		}
		if page.Items == nil {
			page.Items = []inventory.Stock{}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"items": page.Items, "next_page": next, "cursor": cursor})
	})
}
