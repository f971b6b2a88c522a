package webhook

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// notGlobal lists, independently of target.go, the address blocks of IANA's special-purpose
// registries that are not globally reachable, or embed another address (6to4, Teredo,
// NAT64, IPv4-compatible), or are deprecated: no webhook may go there unless allowed. An
// IPv4-mapped address (::ffff:0:0/96) is its IPv4 address, judged as one.
var notGlobal = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
		"2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// FuzzTargetAllowed: an address that no allowed network covers is dialled only when it is
// in no block of notGlobal, whether it comes as IPv4, IPv4-mapped IPv6 or IPv6, and the
// dialer's check (Control) says what Allowed says.
func FuzzTargetAllowed(f *testing.F) {
	for _, a := range []string{"93.184.216.34", "10.0.0.1", "::ffff:10.0.0.1", "2002:a00:1::1", "2001:0:a00:1::1",
		"::a00:1", "64:ff9b:1::a00:1", "fec0::1", "2606:2800:220:1:248:1893:25c8:1946", "255.255.255.255"} {
		f.Add(netip.MustParseAddr(a).AsSlice())
	}
	none, _ := ParseAllowNets("")
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		allowed := none.Allowed(a)
		if allowed {
			for _, p := range notGlobal {
				if p.Contains(a) || p.Contains(a.Unmap()) {
					t.Fatalf("%s is allowed, but it is in %s", a, p)
				}
			}
		}
		if none.Allowed(a.Unmap()) != allowed {
			t.Fatalf("%s and %s disagree", a, a.Unmap())
		}
		err := none.Control("tcp", netip.AddrPortFrom(a, 443).String(), nil)
		if (err == nil) != allowed {
			t.Fatalf("%s: Allowed %v, Control %v", a, allowed, err)
		}
		if err != nil && jaego.CodeOf(err) != jaego.CodeTargetRefused {
			t.Fatalf("%s refused without its code: %v", a, err)
		}
	})
}

// FuzzNormalize: whatever a subscription's fields hold, Normalize answers a coded error
// (a 400 or 422 with the field), or a subscription whose every field holds its rules, that
// a second Normalize leaves as it is.
func FuzzNormalize(f *testing.F) {
	f.Add("https://example.com/h", "stock.changed,stock.low", "S1,S2,S1", "", int64(5), 100, "")
	f.Add("http://:80/", "", "", "K1", int64(0), 0, "paused")
	f.Add("https://user@x/", "stock.exploded", "bad store", "", int64(-1), 1001, "failing")
	f.Add("HTTPS://EXAMPLE.com:443/a?b=c#d", ",", ",", ",", int64(1), 1, "active")
	f.Fuzz(func(t *testing.T, rawURL, events, stores, skus string, low int64, batch int, status string) {
		list := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		s := Subscription{URL: rawURL, Events: list(events), Stores: list(stores), SKUs: list(skus), LowStock: low, Batch: batch, Status: Status(status)}
		if err := s.Normalize(); err != nil {
			if jaego.CodeOf(err) == "" {
				t.Fatalf("an error without a code: %v", err)
			}
			return
		}
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(s.URL) > MaxURL {
			t.Fatalf("url %q taken", s.URL)
		}
		if len(s.Events) == 0 || !slices.IsSorted(s.Events) || len(slices.Compact(slices.Clone(s.Events))) != len(s.Events) {
			t.Fatalf("events %q", s.Events)
		}
		for _, e := range s.Events {
			if !slices.Contains(EventTypes, e) {
				t.Fatalf("event type %q taken", e)
			}
		}
		for _, ids := range [][]string{s.Stores, s.SKUs} {
			if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) || len(ids) > MaxFilter {
				t.Fatalf("filter %q", ids)
			}
		}
		for _, st := range s.Stores {
			if jaego.CheckStore(st) != nil {
				t.Fatalf("store %q taken", st)
			}
		}
		for _, k := range s.SKUs {
			if jaego.CheckSKU(k) != nil {
				t.Fatalf("sku %q taken", k)
			}
		}
		if s.Batch < 1 || s.Batch > MaxBatch || s.LowStock < 0 || (s.Status != Active && s.Status != Paused) {
			t.Fatalf("normalized to %+v", s)
		}
		again := s
		again.Events, again.Stores, again.SKUs = slices.Clone(s.Events), slices.Clone(s.Stores), slices.Clone(s.SKUs)
		if err := again.Normalize(); err != nil || !slices.Equal(again.Events, s.Events) || !slices.Equal(again.Stores, s.Stores) ||
			!slices.Equal(again.SKUs, s.SKUs) || again.Batch != s.Batch || again.Status != s.Status {
			t.Fatalf("a second Normalize: %+v, %v; first %+v", again, err, s)
		}
	})
}

// FuzzPositions: a "from" is a time, "now" or a cursor, never a panic, and a time is never
// in the future; a ledger position that parses prints back to one that parses the same.
func FuzzPositions(f *testing.F) {
	f.Add("2026-12-01T10:00:00Z")
	f.Add("now")
	f.Add("l:1000:2000:1500-3/4/20261202|eyJ")
	f.Add("l:x")
	f.Add("2026-1")
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if st, err := ParseStart(s, now); err == nil {
			if st.Time.After(now) {
				t.Fatalf("%q starts in the future: %v", s, st.Time)
			}
			if !st.Now && st.Cursor == "" && st.Time.IsZero() {
				t.Fatalf("%q parsed to nothing", s)
			}
		} else if jaego.CodeOf(err) == "" {
			t.Fatalf("%q: an error without a code: %v", s, err)
		}
		l, err := parseLedger(Position(s))
		if err != nil {
			return
		}
		back, err := parseLedger(l.position())
		if err != nil || back != l {
			t.Fatalf("%q: printed %q, parsed back %+v, %v; want %+v", s, l.position(), back, err, l)
		}
	})
}
