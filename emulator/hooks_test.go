package emulator

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync"
	"testing"

	"github.com/optinkit/optin/internal/signature"
)

// service plays the platform's webhooks: it records each request the emulator makes and answers
// as answer says.
type service struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []hookReq
	answer func(path string, form url.Values) (status int, contentType, body string)
}

type hookReq struct {
	method, path, url, sig, idem string
	form                         url.Values
}

func newService(t *testing.T, answer func(path string, form url.Values) (int, string, string)) *service {
	s := &service{t: t, answer: answer}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(raw))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, hookReq{r.Method, r.URL.Path, "http://" + r.Host + r.URL.RequestURI(), r.Header.Get("X-Twilio-Signature"),
			r.Header.Get("I-Twilio-Idempotency-Token"), form})
		s.mu.Unlock()
		status, ct, body := s.answer(r.URL.Path, form)
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// requests returns what the service was asked, each checked to carry Twilio's signature.
func (s *service) requests() []hookReq {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reqs {
		params := r.form
		if r.method == http.MethodGet {
			params = nil
		}
		if !signature.New(token).Validate(r.url, params, r.sig) {
			s.t.Errorf("%s %s: the signature does not verify", r.method, r.url)
		}
	}
	return append([]hookReq(nil), s.reqs...)
}

func (s *service) url(path string) string { return s.srv.URL + path }

// wantForm compares a request's parameters with want, exactly.
func wantForm(t *testing.T, what string, got, want url.Values) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s parameters\n got %v\nwant %v", what, got, want)
	}
}

const xmlType = "text/xml"
