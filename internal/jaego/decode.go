package jaego

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// StrictUnmarshal decodes exactly one JSON value into v, refusing unknown fields, a name
// given twice in one object (encoding/json would keep the last) and trailing data; its
// errors carry CodeInvalidJSON and say what is wrong in client terms.
func StrictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Code: CodeInvalidJSON, Detail: describeJSONError(err)}
	}
	// Decoder.More says nothing of a stray '}' or ']' after the value (found by
	// FuzzDecodeSpec: "{}}" passed, then crashed the key scan): anything but white space
	// after the value is refused.
	end := int(dec.InputOffset())
	if len(bytes.TrimSpace(data[end:])) > 0 {
		return &Error{Code: CodeInvalidJSON, Detail: "unexpected data after the JSON value"}
	}
	return uniqueKeys(data[:end])
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		want := jsonKind(typeErr.Type.Kind())
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s, got %s", typeErr.Field, want, typeErr.Value)
		}
		return fmt.Sprintf("expected %s, got %s", want, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.EOF):
		return "request body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body ends in the middle of a JSON value"
	}
	return err.Error() // e.g. `json: unknown field "x"`
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// uniqueKeys refuses an object that names a member twice. It runs after the decoder
// accepted data (so data is well-formed JSON) and scans the bytes once: a full tokenizer
// cost three times the decode itself (measured: go test -bench Unmarshal ./internal/jaego).
func uniqueKeys(data []byte) error {
	type frame struct {
		object, expectKey bool
		keys              [][]byte // the names seen, as they are in data (no copies)
	}
	stack := make([]frame, 0, 8)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			stack = append(stack, frame{object: true, expectKey: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if len(stack) > 0 { // always so for data the decoder accepted; never trust it
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expectKey = true
			}
		case '"':
			j := i + 1
			escaped := false
			for ; j < len(data) && data[j] != '"'; j++ {
				if data[j] == '\\' {
					escaped = true
					j++
				}
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
				name := data[i+1 : j]
				if escaped {
					var unq string
					_ = json.Unmarshal(data[i:j+1], &unq)
					name = []byte(unq)
				}
				for _, k := range stack[n-1].keys {
					if bytes.Equal(k, name) {
						return &Error{Code: CodeInvalidJSON, Field: string(name), Detail: fmt.Sprintf("field %q is given twice", name)}
					}
				}
				stack[n-1].keys = append(stack[n-1].keys, name)
				stack[n-1].expectKey = false
			}
			i = j
		}
	}
	return nil
}
