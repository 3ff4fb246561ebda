package emulator

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Request is one request to the REST API as the emulator received it: logged on arrival, before
// authentication, faults and validation, so a test can assert the exact calls a client made.
type Request struct {
	Method string `json:"method"`
	// Path is the URL's path, unescaped (r.URL.Path).
	Path  string     `json:"path"`
	Query url.Values `json:"query"`
	// Form is a POST's form body (application/x-www-form-urlencoded): empty for a POST with another
	// body (a media upload), nil for other methods.
	Form url.Values `json:"form"`
	// WebhookEnabled is the X-Twilio-Webhook-Enabled header, "" without one.
	WebhookEnabled string `json:"webhook_enabled"`
}

// defaultRequestLog is how many requests the log keeps when Options.RequestLog is 0.
const defaultRequestLog = 10000

// maxLoggedForm bounds the form body read for the log, as net/http bounds ParseForm.
const maxLoggedForm = 10 << 20

// requestLog is how many requests the log keeps, 0 for none.
func (e *Emulator) requestLog() int {
	switch n := e.opts.RequestLog; {
	case n == 0:
		return defaultRequestLog
	case n < 0:
		return 0
	default:
		return n
	}
}

// logRequest appends r to the request log, reading a form body without consuming it: the handler
// after it reads the same bytes.
func (e *Emulator) logRequest(r *http.Request) {
	limit := e.requestLog()
	if limit == 0 {
		return
	}
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), WebhookEnabled: r.Header.Get("X-Twilio-Webhook-Enabled")}
	if r.Method == http.MethodPost {
		req.Form = url.Values{}
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" && r.Body != nil {
			data, _ := io.ReadAll(io.LimitReader(r.Body, maxLoggedForm))
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(data), r.Body), r.Body}
			req.Form, _ = url.ParseQuery(string(data)) // a malformed body keeps what parses; the handler refuses it
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.requests) >= 2*limit { // forget the oldest, in batches
		e.requests = append([]Request(nil), e.requests[len(e.requests)-limit+1:]...)
	}
	e.requests = append(e.requests, req)
}

// Requests returns the REST requests received so far, oldest first: every one, whatever it was
// answered (refused credentials, an unknown path, a fault), up to Options.RequestLog of the newest.
// Requests to the emulator's own /emulator endpoints are not in it.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.requests[max(0, len(e.requests)-e.requestLog()):]
	out := make([]Request, len(kept))
	for i, r := range kept {
		// copies, so that a caller changing them changes nothing else
		out[i] = Request{Method: r.Method, Path: r.Path, Query: cloneValues(r.Query), WebhookEnabled: r.WebhookEnabled}
		if r.Form != nil {
			out[i].Form = cloneValues(r.Form)
		}
	}
	return out
}

// ClearRequests empties the request log.
func (e *Emulator) ClearRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = nil
}

// isAPIPath reports whether a path is the REST API's rather than the emulator's own.
func isAPIPath(p string) bool { return !strings.HasPrefix(p, "/emulator/") }

func (e *Emulator) handleRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"requests": e.Requests()})
}

func (e *Emulator) handleClearRequests(w http.ResponseWriter, _ *http.Request) {
	e.ClearRequests()
	w.WriteHeader(http.StatusNoContent)
}
