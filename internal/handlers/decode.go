package handlers

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// errMediaType is a body that is not JSON where JSON is required.
var errMediaType = errors.New("unsupported media type")

// decodeStrict is the one JSON decoder of the HTTP surface (the API's bodies, the webhook's JSON): one
// object, member names matched exactly as written (no "ID" for "id"), a name given twice refused,
// nothing after the object, and — for structs — no member the type does not have.
func decodeStrict(body []byte, v any) error {
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return malformed("body is not a JSON object")
	}
	if err := jsonv2.Unmarshal(body, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return malformed("body is not the JSON object expected: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
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
		return malformed("reading body failed")
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
