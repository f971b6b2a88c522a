// Package console is jaego's web console (design §13): static pages embedded in the binary,
// served at /console/, that call the public API with the user's key (kept in the tab's
// sessionStorage only). Plain HTML, CSS and JavaScript: no build step, no CDN, no library to
// vendor — the pages are small, and every browser since 2020 has fetch, EventSource and
// template literals (docs/dependencies.md says why not htmx).
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// pages are the console's deep-linkable paths: each serves the one page, which shows the
// view its path names.
var pages = []string{"", "stock", "feed", "history", "promotions", "locks", "reservations", "sourcing", "webhooks", "health"}

// Handler serves the console under /console/.
func Handler() http.Handler {
	static, _ := fs.Sub(files, "static")
	assets := http.StripPrefix("/console/", http.FileServerFS(static))
	index, _ := fs.ReadFile(static, "index.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/console/")
		for _, p := range pages {
			if name == p {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Header().Set("Cache-Control", "no-cache")
				w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'")
				_, _ = w.Write(index)
				return
			}
		}
		assets.ServeHTTP(w, r)
	})
}
