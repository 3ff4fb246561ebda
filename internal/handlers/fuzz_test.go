package handlers

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/signature"
)

// FuzzWebhook sends arbitrary requests through the real router: it must never panic, answer only the
// documented statuses, and pass an event to the flow only for a correctly signed request. One router
// serves every input: a cheap execution keeps the fuzzer's minimization of new inputs short, so that it
// spends its time fuzzing (scripts/fuzz.sh also bounds minimization).
func FuzzWebhook(f *testing.F) {
	e := newEnv(f, SignedURL{})
	f.Add("POST", "application/x-www-form-urlencoded", "", event.Encode(), true)
	f.Add("GET", "", event.Encode(), "", true)
	f.Add("POST", "application/json", "", `{"EventType":"onMessageAdded","ConversationSid":"CH00000000000000000000000000000001","MessageSid":"IM00000000000000000000000000000001","Author":"a","Index":1,"Media":[{"x":null}]}`, true)
	f.Add("POST", "application/json", "", `{"EventType":`, true)
	f.Add("POST", "text/plain; charset=utf-8", "a=1", "Body=%zz", false)
	f.Add("POST", "application/x-www-form-urlencoded", "", "EventType=onMessageAdded&ConversationSid=&MessageSid=IM1", true)
	f.Fuzz(func(t *testing.T, method, contentType, query, body string, sign bool) {
		if method != "GET" {
			method = "POST"
		}
		u := target
		if query != "" {
			u += "?" + url.PathEscape(query)
		}
		r, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			return
		}
		r.RequestURI = r.URL.RequestURI()
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		signedURL := "http://example.com" + r.URL.RequestURI()
		if sign {
			switch {
			case method == "GET" || isJSON(contentType):
				r.Header.Set("X-Twilio-Signature", signature.Compute(token, signedURL, nil))
			default:
				form, err := url.ParseQuery(body)
				if err != nil {
					r.Header.Set("X-Twilio-Signature", "garbage")
				} else {
					r.Header.Set("X-Twilio-Signature", signature.Compute(token, signedURL, form))
				}
			}
		}
		e.flows.reset()
		e.logs.Reset()
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { e.h.ServeHTTP(w, r); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			panic(fmt.Sprintf("handler hung on %s %q %q %q", method, contentType, query, body))
		}
		switch w.Code {
		case 200, 400, 403, 413:
		default:
			t.Fatalf("status %d for %s %q %q: %s", w.Code, method, contentType, body, w.Body)
		}
		events := e.flows.reset()
		if !sign && len(events) > 0 {
			t.Fatalf("unsigned request reached the flow: %+v", events)
		}
		// A pre-event is the guard's question, answered before Twilio publishes: never the flow's event.
		if pre := preEvents[eventTypeOf(r, contentType, body)]; w.Code == 200 && pre && len(events) != 0 {
			t.Fatalf("a pre-event reached the flow: %+v", events)
		} else if w.Code == 200 && !pre && len(events) != 1 {
			t.Fatalf("200 without exactly one event: %+v", events)
		}
	})
}

// eventTypeOf is the EventType a webhook request carries, read by the handler's own parsers: the
// query of a GET, the JSON or the form of a POST.
func eventTypeOf(r *http.Request, contentType, body string) string {
	var params url.Values
	switch {
	case r.Method == "GET":
		params = r.URL.Query()
	case isJSON(contentType):
		params, _ = jsonParams([]byte(body))
	default:
		params, _ = parseForm(body)
	}
	return params.Get("EventType")
}

// FuzzParseForm: parseForm reads every input as url.ParseQuery does, and refuses the same ones.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "a=1&a=2&a=1", "a", "=x", "a=%zz", "a;b=1", "&&a=&", "a+b=c%20d", "x=1&y&x=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantErr := url.ParseQuery(s)
		got, err := parseForm(s)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("parseForm(%q) error %v, url.ParseQuery %v", s, err, wantErr)
		}
		if err == nil && !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("parseForm(%q) = %v, url.ParseQuery %v", s, got, want)
		}
		if err == nil {
			for name := range got {
				got[name] = append(got[name], "x") // appending to one name must not change another
			}
			for name, vs := range got {
				if !slices.Equal(vs[:len(vs)-1], want[name]) {
					t.Fatalf("parseForm(%q): appending changed %q", s, name)
				}
			}
		}
	})
}

// FuzzStartBody posts arbitrary bodies to POST /v1/chats through the real admin router: a refused one is
// a 400 problem whose detail and fields say what is wrong in the request's words, never naming a Go
// type, a package or the decoder.
func FuzzStartBody(f *testing.F) {
	const token = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	h, err := NewAdminRouter(noChats{}, noPools{}, []string{token}, authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false), OpenAPI)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{`{"id":"a","custmer":{}}`, `{"customer":"x"}`, `{"invite":{"content_variables":{"1":[]}}}`,
		`{"metadata":{"a":1},"ttl":2}`, `{"id":"a\xff"}`, `{"rider":{"name":{"x":1}}}`, `{"id":"a"}]`, `{"mode":true}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/chats", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			return
		case http.StatusBadRequest:
		default:
			t.Fatalf("%d for %q", w.Code, body)
		}
		var p problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Title != "malformed request" || p.Detail == "" {
			t.Fatalf("%v: %s", err, w.Body.String())
		}
		text := p.Detail
		for _, fe := range p.Errors {
			text += " " + fe.Field + " " + fe.Message
		}
		for _, internal := range []string{"Go ", "handlers.", "Body", "jsontext", "json:", "malformed request", "reflect"} {
			if strings.Contains(text, internal) && !strings.Contains(body, internal) {
				t.Fatalf("%q for %q", text, body)
			}
		}
	})
}
