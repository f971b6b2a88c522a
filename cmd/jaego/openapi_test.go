package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/api"
	"github.com/jaego/jaego/internal/embedded"
	promodb "github.com/jaego/jaego/internal/promo/db"
	"github.com/jaego/jaego/internal/sqldb"
)

// TestOpenAPIMatchesRoutes: openapi.json documents exactly the routes a fully wired server
// registers (durable copy and promotions on), method by method.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ctx := context.Background()
	cfg, log, err := serverConfig("dev", []string{"--http", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, func(*envFlags, *config) {})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	client, err := rueidis.NewClient(rs.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sdb, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	if _, err := sdb.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	s, err := newServer(ctx, cfg, client, sdb, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.listener.Close()
	if err := s.addPromotions(ctx, promodb.New(sdb), client); err != nil {
		t.Fatal(err)
	}
	s.routes()

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	// The console's pages are HTML for people, not API (internal/console).
	served := slices.DeleteFunc(slices.Clone(s.patterns), func(p string) bool { return strings.HasPrefix(p, "GET /console/") })
	slices.Sort(documented)
	slices.Sort(served)
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("served but not in openapi.json: %s", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(served, p) {
			t.Errorf("in openapi.json but not served: %s", p)
		}
	}
}
