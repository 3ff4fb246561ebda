// Package signature checks the X-Twilio-Signature that Twilio puts on every webhook request:
// HMAC-SHA1 with the auth token over the URL it called plus, for form posts, the sorted parameters.
package signature

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Validator checks signatures against one or more auth tokens (more than one while a token is rotated).
type Validator struct {
	keys []*key
}

// key is one token with a pool of HMACs keyed by it: every request, forged ones included, costs a
// MAC per URL variant, and a pooled one is reset rather than keyed and allocated again.
type key struct {
	token []byte
	macs  sync.Pool
}

// sum appends the MAC of rawURL and params to out.
func (k *key) sum(out []byte, rawURL string, params []byte) []byte {
	h, ok := k.macs.Get().(hash.Hash)
	if ok {
		h.Reset()
	} else {
		h = hmac.New(sha1.New, k.token)
	}
	_, _ = io.WriteString(h, rawURL)
	h.Write(params)
	out = h.Sum(out)
	k.macs.Put(h)
	return out
}

// New returns a Validator accepting signatures made with any of the non-empty tokens.
func New(tokens ...string) *Validator {
	v := &Validator{}
	for _, t := range tokens {
		if t != "" {
			v.keys = append(v.keys, &key{token: []byte(t)})
		}
	}
	return v
}

// Compute returns the signature Twilio would send for rawURL and the form parameters params (nil for GET
// requests and JSON bodies). Every value of a repeated name counts, values sorted within their name.
func Compute(token, rawURL string, params url.Values) string {
	full, _ := concat(params)
	k := &key{token: []byte(token)}
	return base64.StdEncoding.EncodeToString(k.sum(nil, rawURL, full))
}

// Validate reports whether sig signs rawURL and params. It accepts the URL with and without its port
// and with a single quote escaped or not, because Twilio's signing is not consistent about either.
// The parameters are sorted once whatever the number of variants; a signature that is not a base64
// HMAC-SHA1 is refused before any hashing.
func (v *Validator) Validate(rawURL string, params url.Values, sig string) bool {
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(want) != sha1.Size || len(v.keys) == 0 {
		return false
	}
	full, dedup := concat(params)
	suffixes := [][]byte{full}
	if !bytes.Equal(dedup, full) {
		// twilio-node and twilio-python sign a repeated identical value once.
		suffixes = append(suffixes, dedup)
	}
	ok := false
	var buf [sha1.Size]byte
	for _, u := range urlVariants(rawURL) {
		for _, suffix := range suffixes {
			for _, k := range v.keys {
				// No early return: the work done does not depend on which variant matched.
				ok = hmac.Equal(k.sum(buf[:0], u, suffix), want) || ok
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

// concat builds, in one pass over the sorted names, the parameter string with every value and the one
// with repeated identical values written once (the same slice when no value repeats). It sizes both
// up front and copies a name's values only when there are several to sort: on the webhook's path this
// runs for every request, forged ones included.
func concat(params url.Values) (full, dedup []byte) {
	if len(params) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(params))
	size, repeats := 0, false
	for name, values := range params {
		names = append(names, name)
		for _, v := range values {
			size += len(name) + len(v)
		}
		repeats = repeats || len(values) > 1
	}
	slices.Sort(names)
	full = make([]byte, 0, size)
	if !repeats {
		for _, name := range names {
			if values := params[name]; len(values) == 1 {
				full = append(append(full, name...), values[0]...)
			}
		}
		return full, full
	}
	dedup = make([]byte, 0, size)
	for _, name := range names {
		values := params[name]
		if !slices.IsSorted(values) {
			values = slices.Sorted(slices.Values(values))
		}
		for i, val := range values {
			full = append(append(full, name...), val...)
			if i == 0 || val != values[i-1] {
				dedup = append(append(dedup, name...), val...)
			}
		}
	}
	return full, dedup
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
