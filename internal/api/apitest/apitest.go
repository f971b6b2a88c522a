// Package apitest validates HTTP answers against jaego's OpenAPI document (internal/api),
// with libopenapi-validator (OpenAPI 3.1, JSON Schema 2020-12).
package apitest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/jaego/jaego/internal/api"
)

var (
	once sync.Once
	v    validator.Validator
	vErr error
)

func load() (validator.Validator, error) {
	once.Do(func() {
		doc, err := libopenapi.NewDocument(api.Spec)
		if err != nil {
			vErr = fmt.Errorf("openapi.json: %w", err)
			return
		}
		val, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			vErr = fmt.Errorf("openapi.json: %v", errs)
			return
		}
		v = val
	})
	return v, vErr
}

// Transport checks every answer that comes through it against the document (status,
// content type, body schema, headers) and turns a mismatch into an error of the request.
// Streams (SSE, NDJSON) are passed through unread.
type Transport struct{ Base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, "application/x-ndjson") || strings.HasPrefix(ct, "text/plain") {
		return resp, nil
	}
	val, err := load()
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	check := *resp
	check.Body = io.NopCloser(bytes.NewReader(body))
	ok, errs := val.ValidateHttpResponse(req, &check)
	if !ok && len(errs) > 0 && errs[0].ValidationType == "path" {
		// A path or method the document does not have (a test probing 404 and 405): the
		// answer must still be a problem saying so.
		if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) &&
			strings.HasPrefix(ct, "application/problem+json") && bytes.Contains(body, []byte(`"code"`)) {
			return resp, nil
		}
	}
	if !ok {
		var msgs []string
		for _, e := range errs {
			m := e.Message
			if e.Reason != "" {
				m += ": " + e.Reason
			}
			for _, se := range e.SchemaValidationErrors {
				m += "; " + se.Reason + " at " + se.FieldPath
			}
			msgs = append(msgs, m)
		}
		return nil, fmt.Errorf("%s %s answered %d %s that does not match openapi.json: %s", req.Method, req.URL.Path, resp.StatusCode, body, strings.Join(msgs, " | "))
	}
	return resp, nil
}
