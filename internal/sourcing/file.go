package sourcing

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// LineError is a bad line of a directory file.
type LineError struct {
	Line int
	Err  error
}

// ReadDirectory reads a directory file (CSV store,name,lat,lon,capabilities,status; a
// header line optional; capabilities separated by ';', '|', spaces, or commas in a
// quoted field; status empty for open). Every bad line goes to bad with its number, and
// the stores of the good ones come back; a store given twice is a bad line.
func ReadDirectory(r io.Reader, bad func(LineError)) ([]Store, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var out []Store
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad(LineError{Line: pe.Line, Err: pe.Err})
			continue
		}
		if err != nil {
			return out, err
		}
		line, _ := cr.FieldPos(0)
		if line == 1 && len(rec) > 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "store") {
			continue
		}
		s, err := parseStore(rec)
		if err == nil && seen[s.ID] > 0 {
			err = fmt.Errorf("store %s is given twice (line %d first)", s.ID, seen[s.ID])
		}
		if err != nil {
			bad(LineError{Line: line, Err: err})
			continue
		}
		seen[s.ID] = line
		out = append(out, s)
	}
}

func parseStore(rec []string) (Store, error) {
	if len(rec) != 6 {
		return Store{}, fmt.Errorf("want 6 fields store,name,lat,lon,capabilities,status; got %d", len(rec))
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(rec[3]), 64)
	if err1 != nil || err2 != nil {
		return Store{}, fmt.Errorf("lat %q and lon %q must be numbers", rec[2], rec[3])
	}
	s := Store{ID: strings.TrimSpace(rec[0]), Name: strings.TrimSpace(rec[1]), Lat: lat, Lon: lon,
		Capabilities: strings.FieldsFunc(rec[4], func(r rune) bool { return r == ';' || r == '|' || r == ',' || r == ' ' }),
		Status:       Status(strings.TrimSpace(rec[5]))}
	return s, s.Validate()
}
