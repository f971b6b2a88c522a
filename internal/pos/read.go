package pos

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/jaego/jaego/internal/inventory"
)

// Stats counts what a read kept and what it left out, so that nothing is skipped silently.
type Stats struct {
	Lines          int `json:"lines"`            // non-blank input lines
	StockTxns      int `json:"stock_txns"`       // sale, return, void
	NonStockTxns   int `json:"non_stock_txns"`   // till open/close, cash movements, …: no stock effect
	NonStockLines  int `json:"non_stock_lines"`  // service, gift card, fee, discount lines
	Events         int `json:"events"`           // stock events produced
	BlankLinesSeen int `json:"blank_lines_seen"` // empty lines, ignored
}

// LineError says which input line is malformed and why.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// MaxLine is the longest accepted NDJSON line.
const MaxLine = 1 << 20

// Read decodes NDJSON transactions from r and calls emit with the events of each, in order.
// It stops at the first malformed line with a *LineError, or at the first error of emit.
func Read(r io.Reader, emit func([]inventory.Event) error) (Stats, error) {
	var st Stats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			st.BlankLinesSeen++
			continue
		}
		st.Lines++
		t, err := Decode(line)
		if err != nil {
			return st, &LineError{Line: n, Err: err}
		}
		events := t.Events()
		if stockTypes[t.Type] {
			st.StockTxns++
		} else {
			st.NonStockTxns++
		}
		st.NonStockLines += countNonStock(t)
		st.Events += len(events)
		if len(events) > 0 {
			if err := emit(events); err != nil {
				return st, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, &LineError{Line: n + 1, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	return st, nil
}

func countNonStock(t Transaction) int {
	n := 0
	for _, l := range t.Lines {
		if nonStockLines[l.Kind] {
			n++
		}
	}
	return n
}
