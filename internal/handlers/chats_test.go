package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/optinkit/optin/internal/authlimit"
)

// A start whose body is not the JSON the API takes is a 400 that says, in the request's own words,
// which field is wrong and how — never a Go type, a package or the decoder's name — and names the field
// in errors when one is at fault.
func TestStartMalformedSaysWhichFieldAndWhy(t *testing.T) {
	const token = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	h, err := NewAdminRouter(noChats{}, noPools{}, []string{token}, authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false), OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	const head = `{"type":"https://github.com/optinkit/optin/blob/main/docs/API.md#problem-malformed","title":"malformed request","status":400,`
	for name, tt := range map[string]struct{ body, want string }{
		"unknown field": {`{"id":"a","custmer":{}}`,
			`"detail":"custmer: unknown field (names are exact and case-sensitive)","errors":[{"field":"custmer","message":"unknown field (names are exact and case-sensitive)"}]}`},
		"name in another case": {`{"ID":"a"}`,
			`"detail":"ID: unknown field (names are exact and case-sensitive)","errors":[{"field":"ID","message":"unknown field (names are exact and case-sensitive)"}]}`},
		"unknown field of a party": {`{"customer":{"address":"whatsapp:+15550001111","nme":"Ana"}}`,
			`"detail":"customer.nme: unknown field (names are exact and case-sensitive)","errors":[{"field":"customer.nme","message":"unknown field (names are exact and case-sensitive)"}]}`},
		"string for an object": {`{"id":"a","customer":"whatsapp:+15550001111"}`,
			`"detail":"customer: must be an object, not a string","errors":[{"field":"customer","message":"must be an object, not a string"}]}`},
		"number for a string": {`{"id":8812}`,
			`"detail":"id: must be a string, not a number","errors":[{"field":"id","message":"must be a string, not a number"}]}`},
		"array for an object": {`{"invite":[]}`,
			`"detail":"invite: must be an object, not an array","errors":[{"field":"invite","message":"must be an object, not an array"}]}`},
		"number for a variable": {`{"invite":{"content_variables":{"1":2}}}`,
			`"detail":"invite.content_variables.1: must be a string, not a number","errors":[{"field":"invite.content_variables.1","message":"must be a string, not a number"}]}`},
		"name twice": {`{"customer":{"address":"a","address":"b"}}`,
			`"detail":"customer.address: given twice","errors":[{"field":"customer.address","message":"given twice"}]}`},
		"broken literal": {`{"id":tru}`,
			`"detail":"id: not valid JSON at byte 9: invalid character '}' in literal true (expecting 'e')","errors":[{"field":"id","message":"not valid JSON at byte 9: invalid character '}' in literal true (expecting 'e')"}]}`},
		"missing comma": {`{"id":"a" "mode":"direct"}`,
			`"detail":"the body is not valid JSON at byte 10: invalid character '\"' after object value (expecting ',' or '}')"}`},
		"cut short":       {`{"id":`, `"detail":"the body ends before its JSON object does"}`},
		"trailing brace":  {`{"id":"a"}}`, `"detail":"the body has more after its JSON object"}`},
		"trailing object": {`{"id":"a"} {"id":"b"}`, `"detail":"the body has more after its JSON object"}`},
		"null":            {`null`, `"detail":"the body must be a JSON object"}`},
		"array":           {`[{"id":"a"}]`, `"detail":"the body must be a JSON object"}`},
	} {
		r := httptest.NewRequest(http.MethodPost, "/v1/chats", strings.NewReader(tt.body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", name, w.Code, w.Header().Get("Content-Type"))
		}
		if got := strings.TrimSpace(w.Body.String()); got != head+tt.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, head+tt.want)
		}
		for _, internal := range []string{"Go ", "handlers.", "startBody", "jsontext", "json:", "malformed request:"} {
			if strings.Contains(w.Body.String(), internal) {
				t.Errorf("%s: the answer says %q: %s", name, internal, w.Body.String())
			}
		}
	}
}
