// Package auth is jaego's access control (design §11): API keys with scopes, sent as
// `Authorization: Bearer <key>`, checked against a keys file that holds only their SHA-256.
//
// The keys file has one key a line, `name scopes sha256:<hex> [rate=200/s,burst=400]`
// (scopes comma-separated; the rate limit optional, the guard's default without it; `#`
// starts a comment). A key is found by hashing the presented token and comparing the
// hash with every line's in constant time, so neither a key nor how much of one matched
// shows in the timing. Scopes are independent: a key has exactly the scopes its line lists.
package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Scope is what a key may do.
type Scope string

// The scopes of design §11. Open is a route that needs no key.
const (
	Open Scope = ""
	Read Scope = "read" // stock, changes, history, gifts, promotion version, availability, stores, sourcing
	// Write: events, reservations, the relay's intake, and sourcing with a hold (Require).
	Write Scope = "write"
	Admin Scope = "admin" // everything under /v1/admin/
)

// ScopeOf is the scope a request needs: the one table of it.
func ScopeOf(method, path string) Scope {
	switch {
	case path == "/healthz" || path == "/readyz" || path == "/metrics" || strings.HasPrefix(path, "/console/"):
		return Open // the console's pages are static: what they show, they ask the API for with the user's key
	case strings.HasPrefix(path, "/v1/admin/"):
		return Admin
	case method == http.MethodPost && (path == "/v1/events" || path == "/relay" ||
		path == "/v1/reservations" || strings.HasPrefix(path, "/v1/reservations/")):
		return Write
	}
	return Read
}

// Key is one line of the keys file.
type Key struct {
	Name   string
	Scopes []Scope
	// Limit is the key's own rate limit (rate=…); Default means the guard's default.
	Limit   Limit
	Default bool
	hash    [sha256.Size]byte
}

// Has reports whether the key has scope s.
func (k Key) Has(s Scope) bool {
	for _, x := range k.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// Keys is a loaded keys file.
type Keys struct{ keys []Key }

// Len is how many keys there are.
func (k *Keys) Len() int { return len(k.keys) }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// Parse reads a keys file; an error names the line.
func Parse(r io.Reader) (*Keys, error) {
	ks := &Keys{}
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("line %d: want `name scopes sha256:<hex> [rate=N/s,burst=N]`, got %d fields", n, len(f))
		}
		k := Key{Name: f[0], Default: true}
		if len(f) == 4 {
			spec, ok := strings.CutPrefix(f[3], "rate=")
			l, err := ParseLimit(spec)
			if !ok || err != nil {
				return nil, fmt.Errorf("line %d: the fourth field must be rate=N/s[,burst=N] or rate=none", n)
			}
			k.Limit, k.Default = l, false
		}
		if !nameRE.MatchString(k.Name) {
			return nil, fmt.Errorf("line %d: name %q must match %s", n, k.Name, nameRE)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("line %d: name %q is on an earlier line too", n, k.Name)
		}
		names[k.Name] = true
		for _, s := range strings.Split(f[1], ",") {
			switch sc := Scope(s); sc {
			case Read, Write, Admin:
				k.Scopes = append(k.Scopes, sc)
			default:
				return nil, fmt.Errorf("line %d: unknown scope %q (read, write, admin)", n, s)
			}
		}
		hexed, ok := strings.CutPrefix(f[2], "sha256:")
		b, err := hex.DecodeString(hexed)
		if !ok || err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("line %d: the hash must be sha256:<64 hex digits>", n)
		}
		copy(k.hash[:], b)
		ks.keys = append(ks.keys, k)
	}
	return ks, sc.Err()
}

// Load reads the keys file at path.
func Load(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ks, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return ks, nil
}

func (k *Keys) byName(name string) (Key, bool) {
	for _, x := range k.keys {
		if x.Name == name {
			return x, true
		}
	}
	return Key{}, false
}

// Find returns the key whose hash is the token's, comparing with every key in constant time.
func (k *Keys) Find(token string) (Key, bool) {
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range k.keys {
		if subtle.ConstantTimeCompare(h[:], k.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Key{}, false
	}
	return k.keys[found], true
}

// NewKey makes a random key ("jg_" and 43 base64url characters, 256 bits) and its line for
// the keys file.
func NewKey(name string, scopes []Scope) (token, line string, err error) {
	if !nameRE.MatchString(name) {
		return "", "", fmt.Errorf("name %q must match %s", name, nameRE)
	}
	if len(scopes) == 0 {
		return "", "", fmt.Errorf("give at least one scope (read, write, admin)")
	}
	parts := make([]string, len(scopes))
	for i, s := range scopes {
		if s != Read && s != Write && s != Admin {
			return "", "", fmt.Errorf("unknown scope %q (read, write, admin)", s)
		}
		parts[i] = string(s)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = "jg_" + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(token))
	return token, fmt.Sprintf("%s %s sha256:%s", name, strings.Join(parts, ","), hex.EncodeToString(h[:])), nil
}

// Guard checks requests against the keys it holds; Reload swaps them at once (SIGHUP).
// A Guard without a keys file lets everything through (--auth none).
type Guard struct {
	path     string
	keys     atomic.Pointer[Keys]
	limit    Limit // for keys without rate= of their own (--rate-limit)
	limiters Limiters
	now      func() time.Time
}

// SetDefaultLimit sets the rate limit of keys whose line has none (--rate-limit).
func (g *Guard) SetDefaultLimit(l Limit) { g.limit = l }

// Limit takes a token for the key named caller (whose request was authorized), sets the
// RateLimit headers on h, and answers *RateLimited past the key's limit.
func (g *Guard) Limit(caller string, h http.Header) error {
	ks := g.keys.Load()
	if ks == nil || caller == "" {
		return nil
	}
	k, ok := ks.byName(caller)
	if !ok {
		return nil
	}
	l := k.Limit
	if k.Default {
		l = g.limit
	}
	return g.limiters.Take(caller, l, g.now(), h)
}

// NewGuard loads path; path "" makes an open guard.
func NewGuard(path string) (*Guard, error) {
	g := &Guard{path: path, now: time.Now}
	if path == "" {
		return g, nil
	}
	return g, g.Reload()
}

// Open reports whether the guard lets everything through.
func (g *Guard) Open() bool { return g.path == "" }

// Reload reads the keys file again; on an error the keys in use stay.
func (g *Guard) Reload() error {
	if g.path == "" {
		return nil
	}
	ks, err := Load(g.path)
	if err != nil {
		return err
	}
	g.keys.Store(ks)
	return nil
}

// Keys is how many keys the guard holds.
func (g *Guard) Keys() int {
	if ks := g.keys.Load(); ks != nil {
		return ks.Len()
	}
	return 0
}

// Authorize checks r: the caller's key name ("" for an open route or guard), or an
// unauthenticated (401) or forbidden (403) error.
func (g *Guard) Authorize(r *http.Request) (string, error) {
	return g.authorize(r, ScopeOf(r.Method, r.URL.Path))
}

// Require checks that r's key has scope need, beyond what its route needs: a route whose
// body asks for more calls it (POST /v1/sourcing reads, and with "hold" writes). Nil with
// an open guard.
func (g *Guard) Require(r *http.Request, need Scope) error {
	_, err := g.authorize(r, need)
	return err
}

func (g *Guard) authorize(r *http.Request, need Scope) (string, error) {
	if g.path == "" || need == Open {
		return "", nil
	}
	// The scheme is case-insensitive (RFC 9110 §11.1): bearer, Bearer and BEARER alike.
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", jaego.Errorf(jaego.CodeUnauthenticated, "this route needs an API key with scope %s: Authorization: Bearer <key>", need)
	}
	k, found := g.keys.Load().Find(strings.TrimSpace(token))
	if !found {
		return "", jaego.Errorf(jaego.CodeUnauthenticated, "unknown API key")
	}
	if !k.Has(need) {
		return k.Name, jaego.Errorf(jaego.CodeForbidden, "key %s lacks scope %s", k.Name, need)
	}
	return k.Name, nil
}

// ReloadOnHangup catches SIGHUP from now on and returns the loop that reloads the keys
// file at each one until its ctx ends, calling loaded with the number of keys after each
// reload; a file that does not load is logged, and the keys loaded before stay in use.
// The signal is caught before the loop runs: a SIGHUP that came before it would otherwise
// end the process (Go's default for SIGHUP), and one that comes meanwhile waits for it.
func (g *Guard) ReloadOnHangup(log *slog.Logger, loaded func(keys int)) (run func(ctx context.Context)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // now: a SIGHUP before run starts would end the process
	return func(ctx context.Context) {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if err := g.Reload(); err != nil {
				log.Error("keys file not reloaded; the keys loaded before stay in use", "err", err)
				continue
			}
			loaded(g.Keys())
			log.Info("keys file reloaded", "keys", g.Keys())
		}
	}
}
