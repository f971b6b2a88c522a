package auth_test

import (
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/auth"
)

func TestParseRefusesWithTheLine(t *testing.T) {
	good := "shop read,write sha256:" + strings.Repeat("ab", 32)
	for text, want := range map[string]string{
		"# a comment\n\nshop read":                            "line 3: want `name scopes sha256:<hex> [rate=N/s,burst=N]`",
		good + "\n" + good:                                    "line 2: name \"shop\" is on an earlier line too",
		"shop read,delete sha256:" + strings.Repeat("ab", 32): "line 1: unknown scope \"delete\"",
		"shop read sha256:abc":                                "line 1: the hash must be",
		"shop read md5:" + strings.Repeat("ab", 32):           "line 1: the hash must be",
		"sh op read sha256:" + strings.Repeat("ab", 32):       "line 1: the fourth field must be rate=",
		"s h op read sha256:" + strings.Repeat("ab", 32):      "line 1: want",
		"shop! read sha256:" + strings.Repeat("ab", 32):       "line 1: name",
	} {
		if _, err := auth.Parse(strings.NewReader(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", text, err, want)
		}
	}
	ks, err := auth.Parse(strings.NewReader("# keys\n" + good + "  # the shop\n"))
	if err != nil || ks.Len() != 1 {
		t.Fatalf("%v %v", ks, err)
	}
}

func TestNewKeyIsFoundByItsLine(t *testing.T) {
	token, line, err := auth.NewKey("oncall", []auth.Scope{auth.Read, auth.Admin})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(line, token) || len(token) != 46 {
		t.Fatalf("line %q holds the key, or the key %q is not 46 characters", line, token)
	}
	other, otherLine, _ := auth.NewKey("shop", []auth.Scope{auth.Write})
	ks, err := auth.Parse(strings.NewReader(line + "\n" + otherLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := ks.Find(token); !ok || k.Name != "oncall" || !k.Has(auth.Admin) || k.Has(auth.Write) {
		t.Errorf("found %+v %v", k, ok)
	}
	if k, ok := ks.Find(other); !ok || k.Name != "shop" {
		t.Errorf("found %+v %v", k, ok)
	}
	if _, ok := ks.Find(token[:len(token)-1]); ok {
		t.Errorf("a prefix of a key was taken for it")
	}
	for _, bad := range [][]auth.Scope{nil, {"root"}} {
		if _, _, err := auth.NewKey("x", bad); err == nil {
			t.Errorf("scopes %v accepted", bad)
		}
	}
}

func TestScopeOf(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         auth.Scope
	}{
		{"GET", "/healthz", auth.Open}, {"GET", "/console/stock", auth.Open}, {"GET", "/readyz", auth.Open}, {"GET", "/metrics", auth.Open},
		{"GET", "/openapi.json", auth.Read}, {"GET", "/v1/stores/S1/skus/A", auth.Read}, {"GET", "/v1/changes", auth.Read},
		{"POST", "/v1/availability", auth.Read}, {"POST", "/v1/gifts/evaluate", auth.Read}, {"GET", "/v1/reservations/r1", auth.Read},
		{"POST", "/v1/events", auth.Write}, {"POST", "/v1/reservations", auth.Write}, {"POST", "/v1/reservations/r1/cancel", auth.Write},
		{"POST", "/relay", auth.Write},
		{"GET", "/v1/admin/locks", auth.Admin}, {"POST", "/v1/admin/breaker", auth.Admin}, {"PATCH", "/v1/admin/promotions/p1", auth.Admin},
	} {
		if got := auth.ScopeOf(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.method, c.path, got, c.want)
		}
	}
}
