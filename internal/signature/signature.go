// Package signature checks the X-Twilio-Signature that Twilio puts on every webhook request:
// HMAC-SHA1 with the auth token over the URL it called plus, for form posts, the sorted parameters.
package signature

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Validator checks signatures against one or more auth tokens (more than one while a token is rotated).
type Validator struct {
	keys [][]byte
}

// New returns a Validator accepting signatures made with any of the non-empty tokens.
func New(tokens ...string) *Validator {
	v := &Validator{}
	for _, t := range tokens {
		if t != "" {
			v.keys = append(v.keys, []byte(t))
		}
	}
	return v
}

// Compute returns the signature Twilio would send for rawURL and the form parameters params (nil for GET
// requests and JSON bodies). Every value of a repeated name counts, values sorted within their name.
func Compute(token, rawURL string, params url.Values) string {
	return sign([]byte(token), rawURL+concat(params, false))
}

// Validate reports whether sig signs rawURL and params. It accepts the URL with and without its port
// and with a single quote escaped or not, because Twilio's signing is not consistent about either.
func (v *Validator) Validate(rawURL string, params url.Values, sig string) bool {
	if sig == "" || len(v.keys) == 0 {
		return false
	}
	suffixes := []string{concat(params, false)}
	if dedup := concat(params, true); dedup != suffixes[0] {
		// twilio-node and twilio-python sign a repeated identical value once.
		suffixes = append(suffixes, dedup)
	}
	ok := false
	for _, u := range urlVariants(rawURL) {
		for _, suffix := range suffixes {
			for _, key := range v.keys {
				// No early return: the work done does not depend on which variant matched.
				ok = hmac.Equal([]byte(sign(key, u+suffix)), []byte(sig)) || ok
			}
		}
	}
	return ok
}

// ValidateBody checks a request whose JSON body is signed through the URL's bodySHA256 parameter:
// the signature covers the URL alone and the parameter must be the body's SHA-256.
func (v *Validator) ValidateBody(rawURL string, body []byte, sig string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	want := u.Query().Get("bodySHA256")
	if want == "" {
		return false
	}
	sum := sha256.Sum256(body)
	bodyOK := hmac.Equal([]byte(strings.ToLower(want)), []byte(hex.EncodeToString(sum[:])))
	return v.Validate(rawURL, nil, sig) && bodyOK
}

func sign(key []byte, data string) string {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func concat(params url.Values, dedup bool) string {
	if len(params) == 0 {
		return ""
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(params)) {
		values := slices.Sorted(slices.Values(params[name]))
		if dedup {
			values = slices.Compact(values)
		}
		for _, val := range values {
			b.WriteString(name)
			b.WriteString(val)
		}
	}
	return b.String()
}

// urlVariants returns rawURL as given, without its port, with the scheme's default port, and each of
// those with a single quote escaped and unescaped; the text is otherwise left exactly as received.
func urlVariants(rawURL string) []string {
	out := []string{rawURL}
	if head, host, port, tail, ok := splitAuthority(rawURL); ok {
		if port != "" {
			out = append(out, head+host+tail)
		} else if def := defaultPort(head); def != "" {
			out = append(out, head+host+":"+def+tail)
		}
	}
	for _, u := range out {
		if strings.Contains(u, "'") {
			out = append(out, strings.ReplaceAll(u, "'", "%27"))
		}
		if strings.Contains(u, "%27") {
			out = append(out, strings.ReplaceAll(u, "%27", "'"))
		}
	}
	return slices.Compact(out)
}

// splitAuthority cuts "scheme://userinfo@host:port/rest" into the part before the host, the host, the
// port and the rest.
func splitAuthority(raw string) (head, host, port, tail string, ok bool) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", "", "", "", false
	}
	start := i + 3
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	authority := raw[start:end]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		start += at + 1
		authority = authority[at+1:]
	}
	host = authority
	if c := strings.LastIndex(authority, ":"); c >= 0 && !strings.Contains(authority[c:], "]") {
		host, port = authority[:c], authority[c+1:]
	}
	return raw[:start], host, port, raw[end:], true
}

func defaultPort(head string) string {
	switch {
	case strings.HasPrefix(strings.ToLower(head), "https://"):
		return "443"
	case strings.HasPrefix(strings.ToLower(head), "http://"):
		return "80"
	}
	return ""
}
