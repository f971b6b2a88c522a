package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/api"
	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/testenv"
)

// keysFile writes a keys file of one key per scope (and one with all three) and returns
// it with the keys by name.
func keysFile(t *testing.T) (string, map[string]string) {
	t.Helper()
	tokens := map[string]string{}
	var lines []string
	for name, scopes := range map[string][]auth.Scope{"reader": {auth.Read}, "writer": {auth.Write}, "admin": {auth.Admin},
		"all": {auth.Read, auth.Write, auth.Admin}} {
		token, line, err := auth.NewKey(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		tokens[name], lines = token, append(lines, line)
	}
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("# jaego keys\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tokens
}

// authCall sends method path with key (none when ""), validated against the OpenAPI document.
func authCall(t *testing.T, method, url, key string) (int, http.Header, map[string]any) {
	t.Helper()
	var body io.Reader
	if method != http.MethodGet {
		body = strings.NewReader("{}")
	}
	req, _ := http.NewRequest(method, url, body)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		_ = json.NewDecoder(resp.Body).Decode(&m)
	}
	return resp.StatusCode, resp.Header, m
}

// TestAccessControl is design §11 over every route of the OpenAPI document (which a test
// holds equal to the router) × {no key, an unknown key, a key without the route's scope,
// a key with it}: 401 with WWW-Authenticate, 401, 403, and anything but those. Only
// /healthz, /readyz and /metrics answer without a key.
func TestAccessControl(t *testing.T) {
	_, rs := testenv.Redis(t)
	pg := testenv.Postgres(t)
	path, keys := keysFile(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + rs.Addr, "JAEGO_POSTGRES_URL": pg, "JAEGO_API_KEYS_FILE": path, "JAEGO_LOG_LEVEL": "warn"}
	if err := run(context.Background(), []string{"jaego", "migrate"}, func(k string) string { return env[k] }, nil, io.Discard, t.Output()); err != nil {
		t.Fatal(err)
	}
	s := start(t, env, "serve", "--http", "127.0.0.1:0")
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	routes := 0
	for p, ops := range doc.Paths {
		url := s.api + strings.NewReplacer("{store}", "S1", "{sku}", "A", "{id}", "x1", "{name}", "projector").Replace(p)
		for m := range ops {
			method := strings.ToUpper(m)
			routes++
			need := auth.ScopeOf(method, p)
			if need == auth.Open {
				if code, _, body := authCall(t, method, url, ""); code == 401 || code == 403 {
					t.Errorf("%s %s without a key: %d %v", method, p, code, body)
				}
				continue
			}
			if code, h, body := authCall(t, method, url, ""); code != 401 || body["code"] != "unauthenticated" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s without a key: %d %v %v", method, p, code, h, body)
			}
			if code, _, _ := authCall(t, method, url, "jg_not-a-key"); code != 401 {
				t.Errorf("%s %s with an unknown key: %d", method, p, code)
			}
			wrong := map[auth.Scope]string{auth.Read: "writer", auth.Write: "reader", auth.Admin: "reader"}[need]
			if code, _, body := authCall(t, method, url, keys[wrong]); code != 403 || body["code"] != "forbidden" {
				t.Errorf("%s %s with %s: %d %v", method, p, wrong, code, body)
			}
			right := map[auth.Scope]string{auth.Read: "reader", auth.Write: "writer", auth.Admin: "admin"}[need]
			for _, k := range []string{right, "all"} {
				if code, _, body := authCall(t, method, url, keys[k]); code == 401 || code == 403 {
					t.Errorf("%s %s with %s: %d %v", method, p, k, code, body)
				}
			}
		}
	}
	if routes < 30 {
		t.Fatalf("only %d routes in the document", routes)
	}

	// The audit trail of a promotion: who created, changed and stopped it, and when.
	req := func(method, path, body, key string) map[string]any {
		r, _ := http.NewRequest(method, s.api+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+keys[key])
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s as %s: %d %v", method, path, key, resp.StatusCode, m)
		}
		return m
	}
	p := req("POST", "/v1/admin/promotions", salePromotion, "admin")
	id := p["id"].(string)
	req("PATCH", "/v1/admin/promotions/"+id, `{"name":"Toner 2+1"}`, "all")
	p = req("POST", "/v1/admin/promotions/"+id+"/stop", ``, "admin")
	if p["created_by"] != "admin" || p["updated_by"] != "admin" {
		t.Errorf("promotion by %v / %v", p["created_by"], p["updated_by"])
	}
	var got []string
	for _, c := range req("GET", "/v1/admin/promotions/"+id+"/changes", ``, "admin")["changes"].([]any) {
		got = append(got, c.(map[string]any)["action"].(string)+" by "+c.(map[string]any)["by"].(string))
	}
	if strings.Join(got, ", ") != "create by admin, update by all, stop by admin" {
		t.Errorf("changes: %v", got)
	}
}

// TestKeysReloadAndSecrecy, on the built binary: a key added to the keys file works after
// SIGHUP (and not before), a removed one stops; a broken file keeps the keys in use; no
// key appears in the log (access log and audit lines on) or in an answer.
func TestKeysReloadAndSecrecy(t *testing.T) {
	t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
	bin := buildJaego(t)
	_, rs := testenv.Redis(t)
	path, keys := keysFile(t)
	p := startJaego(t, bin, "serve", "--http", "127.0.0.1:0", "--redis", "redis://"+rs.Addr+"/0", "--api-keys", path, "--access-log")
	late, line, err := auth.NewKey("late", []auth.Scope{auth.Read, auth.Admin})
	if err != nil {
		t.Fatal(err)
	}
	stock := p.api + "/v1/stores/S1/skus/A"
	if code, _, _ := authCall(t, "GET", stock, late); code != 401 {
		t.Fatalf("a key not in the file yet: %d", code)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(line + "\n")
	f.Close()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the new key accepted after SIGHUP", 10*time.Second, func() bool {
		code, _, _ := authCall(t, "GET", stock, late)
		return code == 404 // no such record, but let in
	})
	// An admin change by the new key is audited with its name.
	if code, _, _ := authCall(t, "POST", p.api+"/v1/admin/locks/projector/force-unlock", late); code == 401 || code == 403 {
		t.Fatalf("force-unlock with an admin key: %d", code)
	}
	// A broken file is refused; the keys in use stay.
	if err := os.WriteFile(path, []byte("broken line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, "the broken file reported", 10*time.Second, func() bool {
		b, _ := os.ReadFile(p.log)
		return strings.Contains(string(b), "keys file not reloaded")
	})
	if code, _, _ := authCall(t, "GET", stock, keys["reader"]); code != 404 {
		t.Errorf("a key in use after a broken reload: %d", code)
	}
	// Removed from the file: refused after the next reload.
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, "the removed key refused", 10*time.Second, func() bool {
		code, _, _ := authCall(t, "GET", stock, keys["reader"])
		return code == 401
	})
	logged, _ := os.ReadFile(p.log)
	for name, k := range keys {
		if strings.Contains(string(logged), k) || strings.Contains(string(logged), k[3:20]) {
			t.Errorf("the log holds key %s", name)
		}
	}
	if strings.Contains(string(logged), late) {
		t.Errorf("the log holds the late key")
	}
	if !strings.Contains(string(logged), `"msg":"audit"`) || !strings.Contains(string(logged), `"key":"late"`) {
		t.Errorf("no audit line naming the key:\n%s", logged)
	}
}

// TestRateLimits, through serve: a key's own rate= (here a burst of 3, one more a minute)
// answers 429 rate_limited with Retry-After past it, every answer to it carries the IETF
// RateLimit-Policy and RateLimit headers, refusals are counted by key name, another key is
// not limited by it, and the scheme's case does not matter.
func TestRateLimits(t *testing.T) {
	_, rs := testenv.Redis(t)
	token, line, err := auth.NewKey("shop", []auth.Scope{auth.Read})
	if err != nil {
		t.Fatal(err)
	}
	free, freeLine, _ := auth.NewKey("free", []auth.Scope{auth.Read})
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(line+" rate=1/m,burst=3\n"+freeLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, map[string]string{"JAEGO_REDIS_URL": "redis://" + rs.Addr, "JAEGO_API_KEYS_FILE": path, "JAEGO_LOG_LEVEL": "warn"}, "serve", "--http", "127.0.0.1:0")
	get := func(key, scheme string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("GET", s.api+"/v1/stores/S1/skus/A", nil)
		req.Header.Set("Authorization", scheme+" "+key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	for i, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		resp, body := get(token, scheme)
		if resp.StatusCode != 404 || resp.Header.Get("RateLimit-Policy") != `"key";q=3;w=180` || !strings.HasPrefix(resp.Header.Get("RateLimit"), fmt.Sprintf(`"key";r=%d;`, 2-i)) {
			t.Fatalf("request %d (%s): %d %v %v", i, scheme, resp.StatusCode, resp.Header, body)
		}
	}
	resp, body := get(token, "Bearer")
	if resp.StatusCode != 429 || body["code"] != "rate_limited" || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit") == "" {
		t.Fatalf("past the burst: %d %v %v", resp.StatusCode, resp.Header, body)
	}
	for range 10 { // the default --rate-limit is none
		if resp, body := get(free, "Bearer"); resp.StatusCode != 404 || resp.Header.Get("RateLimit") != "" {
			t.Fatalf("a key without a limit: %d %v %v", resp.StatusCode, resp.Header, body)
		}
	}
	if n := metricValue(t, s.api, `jaego_rate_limited_total{key="shop"}`); n != 1 {
		t.Errorf("jaego_rate_limited_total{key=\"shop\"} = %v, want 1", n)
	}
}
