package signature

import (
	"net/url"
	"testing"
)

// FuzzValidate: whatever the URL, parameters and header, validation neither panics nor accepts a
// signature that was not made for exactly that request; our own signature always passes.
func FuzzValidate(f *testing.F) {
	f.Add("12345", goURL, "Digits", "1234", "Digits", "5678", "vOEb5UThFn24KEfnOFLQY2AE5FY=")
	f.Add("s3cr3t", "https://example.com:443/path?test=param'WithQuote", "", "", "", "", "")
	f.Add("abc", "http://[::1]:8080/webhooks/conversations?x=%27", "Body", "ü", "Body", "", "AAAA")
	f.Add("t", "not a url", "a", "b", "c", "d", "====")
	f.Fuzz(func(t *testing.T, token, rawURL, k1, v1, k2, v2, header string) {
		params := url.Values{}
		if k1 != "" {
			params.Add(k1, v1)
		}
		if k2 != "" {
			params.Add(k2, v2)
		}
		v := New(token)
		got := v.Validate(rawURL, params, header)
		if token == "" && got {
			t.Fatal("accepted without a token")
		}
		if token == "" {
			return
		}
		own := Compute(token, rawURL, params)
		if !v.Validate(rawURL, params, own) {
			t.Fatalf("own signature rejected for %q %v", rawURL, params)
		}
		if v.Validate(rawURL, params, own+"x") {
			t.Fatal("a changed signature was accepted")
		}
		_ = v.ValidateBody(rawURL, []byte(v1), header)
	})
}
