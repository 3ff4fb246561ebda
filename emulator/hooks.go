package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/optinkit/optin/internal/signature"
)

// How the emulator calls a webhook, as Twilio does: signed, with an idempotency token, within
// Options.WebhookTimeout.

// send makes the signed webhook request as Twilio does and returns the URL called, the status and
// any transport error.
func (e *Emulator) send(target, method string, params url.Values) (string, int, string) {
	a := e.request(target, method, params, randomToken())
	return a.URL, a.Status, a.Err
}

// hookAnswer is how a webhook's server answered.
type hookAnswer struct {
	URL         string
	Status      int
	ContentType string
	Body        []byte
	Err         string
	// TimedOut is true when no answer came within Options.WebhookTimeout.
	TimedOut bool
}

// maxHookAnswer bounds what the emulator reads of a webhook's answer (TwiML, a pre-event's JSON).
const maxHookAnswer = 64 << 10

// request makes a signed webhook request as Twilio does: GET with the parameters appended to the
// configured URL's query, or POST with them as a form; the signature covers the full URL and, for
// POST, the sorted parameters. token is the I-Twilio-Idempotency-Token: a retry repeats it.
func (e *Emulator) request(target, method string, params url.Values, token string) hookAnswer {
	var req *http.Request
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.WebhookTimeout)
	defer cancel()
	if strings.EqualFold(method, http.MethodGet) {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + params.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err == nil {
			req.Header.Set("X-Twilio-Signature", signature.Compute(e.opts.AuthToken, withoutUser(target), nil))
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(params.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
			req.Header.Set("X-Twilio-Signature", signature.Compute(e.opts.AuthToken, withoutUser(target), params))
		}
	}
	if err != nil {
		return hookAnswer{URL: target, Err: err.Error()}
	}
	req.Header.Set("I-Twilio-Idempotency-Token", token)
	req.Header.Set("User-Agent", "TwilioProxy/1.1 (optin emulator)")
	resp, err := e.hooks.Do(req)
	if err != nil {
		return hookAnswer{URL: target, Err: err.Error(), TimedOut: errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHookAnswer))
	a := hookAnswer{URL: target, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body}
	if err != nil {
		a.Err, a.TimedOut = err.Error(), ctx.Err() != nil
	}
	return a
}

// withoutUser is the URL Twilio signs: a user and password in it (a proxy's basic auth, which the
// request carries in its Authorization header) are left out.
func withoutUser(target string) string {
	u, err := url.Parse(target)
	if err != nil || u.User == nil {
		return target
	}
	u.User = nil
	return u.String()
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
