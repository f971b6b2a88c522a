package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/jaego/jaego/internal/jaego"
)

// Targets is the rule of design §14 on where webhooks may go: public addresses only, unless
// an address is inside an allowed network (--webhook-allow-net). It is checked twice: when
// a subscription is made (its host's addresses), and at every connection (the address
// actually dialled), so a name that later resolves to an internal address is refused too.
type Targets struct {
	allow []netip.Prefix
}

// ParseAllowNets reads --webhook-allow-net: CIDRs separated by commas ("" allows none).
func ParseAllowNets(s string) (Targets, error) {
	var t Targets
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pre, err := netip.ParsePrefix(p)
		if err != nil {
			return Targets{}, fmt.Errorf("--webhook-allow-net: %q is not a CIDR (e.g. 10.0.0.0/8, 127.0.0.1/32)", p)
		}
		t.allow = append(t.allow, pre.Masked())
	}
	return t, nil
}

// AllowLoopback is the rule of jaego dev: loopback too.
func AllowLoopback() Targets {
	return Targets{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// With is t allowing u's networks too.
func (t Targets) With(u Targets) Targets {
	return Targets{allow: append(append([]netip.Prefix(nil), t.allow...), u.allow...)}
}

// Allowed reports whether addr may be dialled: a public unicast address, or one inside an
// allowed network.
func (t Targets) Allowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range t.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return public(addr)
}

// nonPublic are ranges no webhook may reach unless allowed, beyond what netip classifies:
// shared (carrier-grade NAT), benchmarking, documentation and the reserved ranges, and the
// IPv6 forms that carry an IPv4 address inside (NAT64, 6to4, Teredo, IPv4-compatible: a
// way to a private IPv4 address past a check of IPv4 ranges) or are deprecated (site-local).
// FuzzTargetAllowed holds it to IANA's special-purpose registries.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/96"), netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"), netip.MustParsePrefix("2001::/23"), netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), netip.MustParsePrefix("3fff::/20"), netip.MustParsePrefix("5f00::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

func public(a netip.Addr) bool {
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Check checks a subscription's URL: its scheme, and every address its host has now.
func (t Targets) Check(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return &jaego.Error{Code: jaego.CodeTargetRefused, Field: "url", Detail: "url must be an absolute http:// or https:// URL"}
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return &jaego.Error{Code: jaego.CodeTargetRefused, Field: "url", Detail: fmt.Sprintf("the host %s does not resolve: %v", host, err)}
		}
		addrs = ips
	}
	for _, a := range addrs {
		if !t.Allowed(a) {
			return refused(a)
		}
	}
	return nil
}

func refused(a netip.Addr) error {
	return &jaego.Error{Code: jaego.CodeTargetRefused, Field: "url", Detail: fmt.Sprintf(
		"the url's host is %s, a loopback, private, link-local or reserved address: webhooks go to public addresses, or to networks allowed with --webhook-allow-net", a)}
}

// Control is a net.Dialer's Control: it refuses a connection to an address Allowed does not
// allow, whatever name led there.
func (t Targets) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	if !t.Allowed(ap.Addr()) {
		return refused(ap.Addr())
	}
	return nil
}
