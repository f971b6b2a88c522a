package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
)

// jaego capacity prints the plan of the model for the size given, and refuses a size
// that is none.
func TestCapacityCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"jaego", "capacity", "--rows", "1e8", "--events", "20000", "--lookups", "50000"},
		func(string) string { return "" }, nil, &out, t.Output()); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`(?m)^Redis masters\s+4, each with 1 replica`, `(?m)^--groups\s+512$`, `(?m)^jaego serve\s+4 instances`,
		`(?m)^PostgreSQL\s+12\.0 GiB of copy, 5896\.8 GiB of ledger`} {
		if !regexp.MustCompile(line).MatchString(out.String()) {
			t.Errorf("no line %s in:\n%s", line, out.String())
		}
	}
	if err := run(context.Background(), []string{"jaego", "capacity", "--rows", "0"}, func(string) string { return "" }, nil, &out, t.Output()); err == nil {
		t.Error("a plan for 0 rows")
	}
}
