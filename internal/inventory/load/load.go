// Package load reads a stock snapshot — CSV lines store,sku,on_hand[,safety] — checks all of
// it, and loads it through an inventory.Loader (jaego load, design §1).
//
// A load is two passes over the file: Check reads every line and reports each bad one with
// its number, and only a file without any is loaded (nothing is applied otherwise). Run then
// hands the rows to the Loader in file order, a batch at a time, one batch in flight: a
// shard group's rows arrive in line order, which is what lets the store remember a load by
// one number per group (the last line it applied), so that running the same file again —
// after it finished, or after it was interrupted half-way — changes nothing that it already
// did. The load id is the file's SHA-256: another file is another load.
package load

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// LineError is a bad line of a snapshot.
type LineError struct {
	Line int64
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Summary is what Check found in a snapshot.
type Summary struct {
	Rows int64  // good rows
	Bad  int64  // bad lines
	ID   string // the load id: "load-" and the first 16 hex digits of the file's SHA-256
}

// Check reads the whole snapshot r, calls bad for every bad line, and returns the summary.
// An error is a failure to read r, not a bad line.
func Check(r io.Reader, bad func(LineError)) (Summary, error) {
	h := sha256.New()
	var s Summary
	err := each(io.TeeReader(r, h), func(row inventory.LoadRow, lineErr error) error {
		if lineErr != nil {
			s.Bad++
			bad(LineError{Line: row.Line, Err: lineErr})
		} else {
			s.Rows++
		}
		return nil
	})
	s.ID = "load-" + hex.EncodeToString(h.Sum(nil))[:16]
	return s, err
}

// each calls fn for every row of r, with the row's error if it is bad (then only its Line
// is set). A first line whose third field is "on_hand" is a header and skipped.
func each(r io.Reader, fn func(inventory.LoadRow, error) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if err := fn(inventory.LoadRow{Line: int64(pe.StartLine)}, fmt.Errorf("not CSV: %v", pe.Err)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if len(rec) >= 3 && strings.EqualFold(strings.TrimSpace(rec[2]), "on_hand") {
				continue
			}
		}
		row, err := parse(rec)
		row.Line = int64(line)
		if err := fn(row, err); err != nil {
			return err
		}
	}
}

// parse reads one record: store,sku,on_hand[,safety].
func parse(rec []string) (inventory.LoadRow, error) {
	if len(rec) != 3 && len(rec) != 4 {
		return inventory.LoadRow{}, fmt.Errorf("%d fields, want store,sku,on_hand[,safety]", len(rec))
	}
	row := inventory.LoadRow{Store: rec[0], SKU: rec[1]}
	n, err := strconv.ParseInt(rec[2], 10, 64)
	if err != nil {
		return inventory.LoadRow{}, fmt.Errorf("on_hand %q is not an integer", rec[2])
	}
	row.OnHand = n
	if len(rec) == 4 && rec[3] != "" {
		sf, err := strconv.ParseInt(rec[3], 10, 64)
		if err != nil {
			return inventory.LoadRow{}, fmt.Errorf("safety %q is not an integer", rec[3])
		}
		row.Safety = &sf
	}
	if err := row.Validate(); err != nil {
		return inventory.LoadRow{}, err
	}
	return row, nil
}

// Options tunes Run. The zero value of every field means its default.
type Options struct {
	// Batch is how many rows one Load call takes; default 4096.
	Batch int
	// Progress is called with the tally so far at most every Every, and once at the end.
	Progress func(Report)
	// Every is the progress interval; default 2s.
	Every time.Duration
}

// Report is the tally of a load.
type Report struct {
	Rows      int64 // rows handed to the store so far
	Applied   int64 // rows that changed their record
	Unchanged int64 // rows whose record already held their numbers
	Duplicate int64 // rows this load had already applied (a re-run)
	Took      time.Duration
}

// Run loads the snapshot r (already checked: a bad line here is an error) with the load id
// of its Check, one batch in flight at a time; the next batch is read while one is applied.
// It stops at the first error; what it applied stays applied, and running it again goes on
// from there.
func Run(ctx context.Context, loader inventory.Loader, id string, r io.Reader, o Options) (Report, error) {
	if o.Batch <= 0 {
		o.Batch = 4096
	}
	if o.Every <= 0 {
		o.Every = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []inventory.LoadRow, 1)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([]inventory.LoadRow, 0, o.Batch)
		send := func() bool {
			select {
			case batches <- batch:
				batch = make([]inventory.LoadRow, 0, o.Batch)
				return true
			case <-ctx.Done():
				return false
			}
		}
		err := each(r, func(row inventory.LoadRow, err error) error {
			if err != nil {
				return LineError{Line: row.Line, Err: err}
			}
			if batch = append(batch, row); len(batch) == o.Batch && !send() {
				return ctx.Err()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			send()
		}
		readErr <- err
	}()

	start, last := time.Now(), time.Now()
	var rep Report
	for batch := range batches {
		results, err := loader.Load(ctx, id, batch)
		if err != nil {
			rep.Took = time.Since(start)
			return rep, fmt.Errorf("load lines %d-%d: %w", batch[0].Line, batch[len(batch)-1].Line, err)
		}
		for i, res := range results {
			switch res.Status {
			case inventory.Applied:
				rep.Applied++
			case inventory.Unchanged:
				rep.Unchanged++
			case inventory.Duplicate:
				rep.Duplicate++
			default:
				rep.Took = time.Since(start)
				return rep, fmt.Errorf("line %d: %s: %v", batch[i].Line, res.Status, res.Err)
			}
		}
		rep.Rows += int64(len(batch))
		if o.Progress != nil && time.Since(last) >= o.Every {
			rep.Took, last = time.Since(start), time.Now()
			o.Progress(rep)
		}
	}
	rep.Took = time.Since(start)
	if err := <-readErr; err != nil {
		return rep, err
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if o.Progress != nil {
		o.Progress(rep)
	}
	return rep, nil
}
