package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/optinkit/optin/internal/pii"
)

// errMediaType is a body that is not JSON where JSON is required.
var errMediaType = errors.New("unsupported media type")

// decodeStrict is the one JSON decoder of the HTTP surface (the API's bodies, the webhook's JSON): one
// object, member names matched exactly as written (no "ID" for "id"), a name given twice refused,
// nothing after the object, and — for structs — no member the type does not have. Its errors say in
// the client's words (JSON and the request's field names, never Go's) what is wrong and where.
func decodeStrict(body []byte, v any) error {
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return malformed("the body must be a JSON object")
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	obj, err := dec.ReadValue()
	if err != nil {
		return jsonProblem(err)
	}
	obj = bytes.Clone(obj) // the decoder's buffer, reused by the next read
	if _, err := dec.ReadToken(); err != io.EOF {
		return malformed("the body has more after its JSON object")
	}
	if err := jsonv2.Unmarshal(obj, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return jsonProblem(err)
	}
	return nil
}

// jsonProblem says what a JSON error means for the request: which field, and what is wrong with it.
func jsonProblem(err error) error {
	if se, ok := errors.AsType[*jsonv2.SemanticError](err); ok {
		field := fieldOf(se.JSONPointer)
		if errors.Is(se.Err, jsonv2.ErrUnknownName) {
			return malformedField(field, "unknown field (names are exact and case-sensitive)")
		}
		msg := "must be " + goKindText(se.GoType)
		if got := jsonKindText(se.JSONKind); got != "" {
			msg += ", not " + got
		}
		return malformedField(field, msg)
	}
	if se, ok := errors.AsType[*jsontext.SyntacticError](err); ok {
		field := fieldOf(se.JSONPointer)
		switch {
		case errors.Is(se.Err, jsontext.ErrDuplicateName):
			return malformedField(field, "given twice")
		case errors.Is(se.Err, io.ErrUnexpectedEOF):
			return malformed("the body ends before its JSON object does")
		}
		msg := fmt.Sprintf("not valid JSON at byte %d: %v", se.ByteOffset, se.Err)
		if field == "" {
			return malformed("the body is " + msg)
		}
		return malformedField(field, msg)
	}
	return malformed("the body is not valid JSON")
}

// fieldOf names a JSON pointer's member as the API's documents do: customer.address.
func fieldOf(p jsontext.Pointer) string {
	var names []string
	for tok := range p.Tokens() {
		names = append(names, tok)
	}
	field := strings.Join(names, ".")
	if len(field) > maxFieldText {
		field = strings.ToValidUTF8(field[:maxFieldText], "") + "…"
	}
	return pii.Redact(field)
}

// maxFieldText bounds a field's name as an answer repeats it: an unknown member's name is the client's.
const maxFieldText = 100

// goKindText is what a JSON value must be to fill a Go type.
func goKindText(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return goKindText(t.Elem())
	}
	return "of another type"
}

// jsonKindText names a JSON value's kind.
func jsonKindText(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	return ""
}

// decodeJSON reads an API request's body, at most maxAPIBody bytes of application/json, into v (see
// decodeStrict).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if !isJSON(r.Header.Get("Content-Type")) {
		return errMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return malformed("the body could not be read")
	}
	return decodeStrict(body, v)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// jsonParams flattens a JSON object's top level into parameters, as Twilio's form would carry them:
// strings as they are, numbers and booleans as written, nested values as their JSON text, nulls left out.
func jsonParams(body []byte) (url.Values, error) {
	var obj map[string]jsontext.Value
	if err := decodeStrict(body, &obj); err != nil {
		return nil, malformed("body is not a JSON object") // signed but broken: no detail to echo
	}
	out := make(url.Values, len(obj))
	for k, raw := range obj {
		switch raw.Kind() {
		case 'n':
		case '"':
			var s string
			if err := jsonv2.Unmarshal(raw, &s); err != nil {
				return nil, malformed("body is not a JSON object")
			}
			out.Set(k, s)
		default:
			out.Set(k, string(raw))
		}
	}
	return out, nil
}
