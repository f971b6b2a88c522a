// Package api is jaego's HTTP contract as one OpenAPI 3.1 document, openapi.json: every
// route, parameter, body, answer and problem. The binary serves it at /openapi.json; a test
// keeps it equal to the routes the server registers, and the end-to-end tests validate
// every answer they get against it (apitest).
package api

import (
	_ "embed"
	"net/http"
)

// Spec is the OpenAPI document.
//
//go:embed openapi.json
var Spec []byte

// Handler serves the document.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(Spec)
	})
}
