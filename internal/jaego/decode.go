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
// given twice in one object (encoding/json would keep the last), trailing data, and a
// control character in any string (\u0000 reached PostgreSQL as a 500; no text field of
// jaego — names, ids, labels — has a use for a newline or a NUL); its
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
		last              []byte   // the name of the member whose value comes next
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
				control := data[j] == 0x7f || data[j] == 0xc2 && j+1 < len(data) && data[j+1] >= 0x80 && data[j+1] <= 0x9f
				if data[j] == '\\' && j+1 < len(data) {
					escaped = true
					j++
					control = bytes.IndexByte([]byte("bfnrt"), data[j]) >= 0 || data[j] == 'u' && controlEscape(data[j+1:])
				}
				if control {
					field := ""
					if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].expectKey {
						field = string(stack[n-1].last)
					}
					return &Error{Code: CodeInvalidJSON, Field: field,
						Detail: "a string holds a control character (U+0000–U+001F, U+007F–U+009F: a NUL, a newline, a tab…); text fields take printable text only"}
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
				stack[n-1].last = name
				stack[n-1].expectKey = false
			}
			i = j
		}
	}
	return nil
}

// controlEscape reports whether the four hex digits at the start of hex (a \u escape) name
// a control character.
func controlEscape(hex []byte) bool {
	if len(hex) < 4 {
		return false
	}
	var r int
	for _, c := range hex[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | int(c-'A'+10)
		default:
			return false
		}
	}
	return r < 0x20 || r >= 0x7f && r <= 0x9f
}
