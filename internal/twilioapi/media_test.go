package twilioapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

const (
	business = "whatsapp:+15550000000"
	customer = "whatsapp:+15550001111"
	rider    = "whatsapp:+15550002222"
)

// seen is one request as the emulator received it.
type seen struct {
	Method, Path, ContentType string
	Body                      []byte
}

// recorder records every REST request on its way to the emulator.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []seen
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body})
		rc.mu.Unlock()
	}
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) take() []seen {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.reqs
	rc.reqs = nil
	return out
}

// mediaSetup is a conversation between customer and rider in an emulator served over HTTP, and the
// adapter pointed at it.
func mediaSetup(t *testing.T) (*Client, *emulator.Emulator, *recorder, string) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: emu}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	api := emulator.NewClient(srv.URL, accountSid, authToken)
	conv, err := api.CreateConversation(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{customer, rider} {
		if _, err := api.AddParticipant(t.Context(), conv, a, business); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{customer, rider} { // both windows open
		if _, err := emu.Inbound(a, business, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	return c, emu, rec, conv
}

var doorPhoto = []byte("\xff\xd8\xff\xe0 the door, green \xff\xd9")

// A photo the customer sent is read with its media, copied into new media of the conversation's
// service with exactly three calls, and sent again under the copy's SID: the rider receives the same
// bytes. The original's SID cannot be sent twice.
func TestCopyMediaAndSendIt(t *testing.T) {
	c, emu, rec, conv := mediaSetup(t)
	ctx := t.Context()
	in, err := emu.InboundMedia(customer, business, "here", emulator.Attachment{ContentType: "image/jpeg", Filename: "door.jpg", Data: doorPhoto})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.FetchMessage(ctx, conv, in.Sid)
	if err != nil {
		t.Fatal(err)
	}
	original := chat.Media{Sid: in.Media[0].Sid, ContentType: "image/jpeg", Filename: "door.jpg", Size: int64(len(doorPhoto))}
	if msg.Body != "here" || msg.Author != customer || !reflect.DeepEqual(msg.Media, []chat.Media{original}) {
		t.Fatalf("fetched %+v", msg)
	}
	rec.take()

	copied, err := c.CopyMedia(ctx, conv, original)
	if err != nil {
		t.Fatal(err)
	}
	service := "IS" + accountSid[2:]
	want := []seen{
		{"GET", "/v1/Conversations/" + conv, "application/x-www-form-urlencoded", []byte{}}, // as twilio-go sends every call
		{"GET", "/v1/Services/" + service + "/Media/" + original.Sid + "/Content", "", []byte{}},
		{"POST", "/v1/Services/" + service + "/Media", "image/jpeg", doorPhoto},
	}
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
	if copied == original.Sid || !strings.HasPrefix(copied, "ME") {
		t.Errorf("copy %q of %q", copied, original.Sid)
	}
	if a, ok := emu.Media(copied); !ok || !bytes.Equal(a.Data, doorPhoto) || a.ContentType != "image/jpeg" {
		t.Errorf("copy holds %+v", a)
	}

	sent, err := c.CreateMessage(ctx, conv, conversation.Message{Author: customer, MediaSid: copied, Attributes: `{"copy":"` + in.Sid + `"}`})
	if err != nil {
		t.Fatal(err)
	}
	wantForm := url.Values{"Author": {customer}, "MediaSid": {copied}, "Attributes": {`{"copy":"` + in.Sid + `"}`}}
	if got := rec.take(); len(got) != 1 || got[0].Method != "POST" || got[0].Path != "/v1/Conversations/"+conv+"/Messages" ||
		string(got[0].Body) != wantForm.Encode() {
		t.Errorf("create message: %q", got)
	}
	lines := emu.Transcript(rider)
	last := lines[len(lines)-1]
	if last.MessageSid != sent || len(last.Media) != 1 || last.Media[0].Sid != copied {
		t.Errorf("rider received %+v", last)
	}

	_, err = c.CreateMessage(ctx, conv, conversation.Message{Author: customer, MediaSid: original.Sid})
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Code != 50508 || ce.Status != 400 || ce.Kind != twiliocall.Permanent {
		t.Errorf("sending the original's media again: %v", err)
	}
}

// CopyMedia's failures are classified as every call's: Twilio's refusals are permanent, 5xx and 429
// retryable; media over WhatsApp's 16 MB is refused, before any call when its size says so, and when
// its content turns out larger.
func TestCopyMediaFailures(t *testing.T) {
	c, emu, rec, conv := mediaSetup(t)
	ctx := t.Context()
	in, err := emu.InboundMedia(customer, business, "", emulator.Attachment{ContentType: "image/png", Data: doorPhoto})
	if err != nil {
		t.Fatal(err)
	}
	m := chat.Media{Sid: in.Media[0].Sid, ContentType: "image/png", Size: int64(len(doorPhoto))}
	rec.take()

	kindOf := func(err error) twiliocall.CallError {
		t.Helper()
		var ce *twiliocall.CallError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want *CallError", err)
		}
		return twiliocall.CallError{Kind: ce.Kind, Status: ce.Status, Code: ce.Code, RetryAfter: ce.RetryAfter}
	}
	_, err = c.CopyMedia(ctx, conv, chat.Media{Sid: m.Sid, Size: maxMediaSize + 1})
	if got := kindOf(err); got.Kind != twiliocall.Permanent || len(rec.take()) != 0 {
		t.Errorf("over 16 MB by its size: %+v", got)
	}
	_, err = c.CopyMedia(ctx, conv, chat.Media{Sid: "ME00000000000000000000000000000000"})
	if got := kindOf(err); got != (twiliocall.CallError{Kind: twiliocall.Permanent, Status: 404, Code: 20404}) {
		t.Errorf("unknown media: %+v", got)
	}
	_, err = c.CopyMedia(ctx, "CH00000000000000000000000000000009", m)
	if got := kindOf(err); got != (twiliocall.CallError{Kind: twiliocall.Permanent, Status: 404, Code: 20404}) {
		t.Errorf("unknown conversation: %+v", got)
	}

	if err := emu.SetFaults([]emulator.Fault{{Route: "media.content", Kind: "503", Count: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CopyMedia(ctx, conv, m)
	if got := kindOf(err); got != (twiliocall.CallError{Kind: twiliocall.Retryable, Status: 503, Code: 20503}) {
		t.Errorf("read answered 503: %+v", got)
	}
	if err := emu.SetFaults([]emulator.Fault{{Route: "media.create", Kind: "429", Count: 1, RetryAfter: 2}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CopyMedia(ctx, conv, m)
	if got := kindOf(err); got.Kind != twiliocall.Retryable || got.Status != 429 || got.RetryAfter.Seconds() != 2 {
		t.Errorf("upload answered 429: %+v", got)
	}
	if err := emu.SetFaults([]emulator.Fault{{Route: "media.create", Kind: "drop", Count: 1, Applied: true}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CopyMedia(ctx, conv, m)
	if got := kindOf(err); got.Kind != twiliocall.Uncertain {
		t.Errorf("upload made, answer lost: %+v", got)
	}
	_ = emu.SetFaults(nil)

	big := bytes.Repeat([]byte{0xab}, maxMediaSize+1)
	large, err := emu.InboundMedia(customer, business, "", emulator.Attachment{ContentType: "video/mp4", Data: big})
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	_, err = c.CopyMedia(ctx, conv, chat.Media{Sid: large.Media[0].Sid, ContentType: "video/mp4", Size: 1}) // its size understated
	if got := kindOf(err); got.Kind != twiliocall.Permanent {
		t.Errorf("content over 16 MB: %+v", got)
	}
	for _, r := range rec.take() {
		if r.Method == "POST" {
			t.Errorf("uploaded despite the size: %s %s", r.Method, r.Path)
		}
	}
}

// Content kept elsewhere is read where the Media Content Service redirects to, without the
// account's credentials.
func TestCopyMediaFollowsContentRedirect(t *testing.T) {
	var storageAuth []string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storageAuth = append(storageAuth, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(doorPhoto)
	}))
	defer storage.Close()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	var seenPaths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenPaths = append(seenPaths, r.Method+" "+r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/Content") {
			http.Redirect(w, r, storage.URL+"/bucket/door.jpg", http.StatusTemporaryRedirect)
			return
		}
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	api := emulator.NewClient(srv.URL, accountSid, authToken)
	conv, err := api.CreateConversation(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seenPaths = nil
	c, _ := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	copied, err := c.CopyMedia(t.Context(), conv, chat.Media{Sid: "ME00000000000000000000000000000001", ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := emu.Media(copied); !ok || !bytes.Equal(a.Data, doorPhoto) {
		t.Errorf("copy holds %+v", a)
	}
	if !reflect.DeepEqual(storageAuth, []string{""}) {
		t.Errorf("storage saw Authorization %q, want one request without", storageAuth)
	}
	want := []string{"GET /v1/Conversations/" + conv, "GET /v1/Services/IS" + accountSid[2:] + "/Media/ME00000000000000000000000000000001/Content",
		"POST /v1/Services/IS" + accountSid[2:] + "/Media"}
	if !reflect.DeepEqual(seenPaths, want) {
		t.Errorf("calls %q, want %q", seenPaths, want)
	}
}

// BaseURL replaces Twilio's hosts — the API's and the Media Content Service's — and no other.
func TestBaseURLReplacesTwilioHostsOnly(t *testing.T) {
	var got []string
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.URL.String())
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}}, nil
	})
	base, _ := url.Parse("http://127.0.0.1:8081")
	tr := &callTransport{ctx: t.Context(), base: base, next: next, rec: &call{}, observe: func(string, int, time.Duration) {}}
	for _, u := range []string{
		"https://conversations.twilio.com/v1/Conversations/CH1",
		"https://mcs.us1.twilio.com/v1/Services/IS1/Media/ME1/Content",
		"https://media.example-storage.com/ME1?sig=x",
	} {
		req, _ := http.NewRequest("GET", u, nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"http://127.0.0.1:8081/v1/Conversations/CH1",
		"http://127.0.0.1:8081/v1/Services/IS1/Media/ME1/Content",
		"https://media.example-storage.com/ME1?sig=x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sent to\n %q\nwant %q", got, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
