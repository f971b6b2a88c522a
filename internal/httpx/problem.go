// Package httpx holds what every HTTP adapter of jaego shares: RFC 9457 problem details,
// the request body limit, and the middleware that measures, logs and recovers every
// request. Strict JSON decoding is the domain's (jaego.StrictUnmarshal), so that HTTP
// and Kafka refuse the same input the same way.
package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Problem is an RFC 9457 problem detail with jaego's stable machine code. Extra holds
// extension members (for example the offending field, or per-event errors of a batch).
type Problem struct {
	Status int
	Code   string
	Title  string
	Detail string
	Extra  map[string]any
	// RetryAfter, when set, is sent as the Retry-After header (whole seconds, at least 1).
	RetryAfter time.Duration
}

// ProblemType is the type URI of a code; docs/errors.md lists every code.
func ProblemType(code string) string { return "urn:problem-type:jaego:" + code }

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	body := map[string]any{}
	for k, v := range p.Extra {
		body[k] = v
	}
	body["type"] = ProblemType(p.Code)
	body["title"] = p.Title
	body["status"] = p.Status
	body["code"] = p.Code
	if p.Detail != "" {
		body["detail"] = p.Detail
	}
	if id := w.Header().Get(RequestIDHeader); id != "" {
		body["request_id"] = id
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (p.RetryAfter+time.Second-1)/time.Second))))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteJSONBytes is WriteJSON of an answer already encoded (by an appender on a hot
// path): the same headers, and the newline json.Encoder ends with.
func WriteJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ReadBody reads a request body of at most MaxBody bytes. The content type is not
// checked: `curl -d` sends form encoding by default, and the body must parse as JSON anyway.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, jaego.Errorf(jaego.CodeBodyTooLarge, "request body is larger than %d bytes", MaxBody)
	}
	if err != nil {
		return nil, jaego.Errorf(jaego.CodeInvalidJSON, "reading body: %v", err)
	}
	return body, nil
}

// Mux is what the adapters register their routes on: a *http.ServeMux, or Routes.
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Routes is a ServeMux that remembers every pattern registered on it: the one list of what
// a server answers, which the OpenAPI document is held to.
type Routes struct {
	*http.ServeMux
	Patterns []string
}

// Handle implements Mux.
func (r *Routes) Handle(pattern string, handler http.Handler) {
	r.Patterns = append(r.Patterns, pattern)
	r.ServeMux.Handle(pattern, handler)
}
