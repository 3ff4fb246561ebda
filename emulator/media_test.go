package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

var photo = []byte("\xff\xd8\xff\xe0 a photo of the door \xff\xd9")

// upload posts raw bytes to the Media Content Service, as Twilio's MCS takes them.
func (h *harness) upload(svc, contentType string, data []byte) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/Services/"+svc+"/Media", bytes.NewReader(data))
	req.Header.Set("Content-Type", contentType)
	req.SetBasicAuth(sid, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// get fetches a URL with or without the account's credentials and returns status, type and body.
func get(t *testing.T, url string, auth bool) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth {
		req.SetBasicAuth(sid, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// An upload answers an ME SID; its resource, its content (authenticated) and its temporary URL (not)
// give back the same bytes and type.
func TestMediaContentService(t *testing.T) {
	h := newHarness(t)
	svc := "IS" + sid[2:]
	code, up := h.upload(svc, "image/jpeg", photo)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, up)
	}
	me := up["sid"].(string)
	if !mediaSidRE.MatchString(me) || up["service_sid"] != svc || up["content_type"] != "image/jpeg" || up["size"] != float64(len(photo)) ||
		up["message_sid"] != nil || up["category"] != "media" {
		t.Errorf("upload answer %v", up)
	}
	meta := h.must(200, "GET", "/v1/Services/"+svc+"/Media/"+me, nil)
	links := meta["links"].(map[string]any)
	if links["content"] != h.srv.URL+"/v1/Services/"+svc+"/Media/"+me+"/Content" {
		t.Errorf("links %v", links)
	}
	for _, c := range []struct {
		url  string
		auth bool
	}{{links["content"].(string), true}, {links["content_direct_temporary"].(string), false}} {
		status, ct, body := get(t, c.url, c.auth)
		if status != 200 || ct != "image/jpeg" || !bytes.Equal(body, photo) {
			t.Errorf("GET %s: %d %q %q", c.url, status, ct, body)
		}
	}
	if status, _, _ := get(t, links["content"].(string), false); status != 401 {
		t.Errorf("content without credentials: %d", status)
	}
	if status, _, _ := get(t, links["content_direct_temporary"].(string)+"x", false); status != 404 {
		t.Errorf("temporary URL with a wrong token: %d", status)
	}
	if code, _ := h.do("GET", "/v1/Services/IS00000000000000000000000000000000/Media/"+me, nil); code != 404 {
		t.Errorf("another service: %d", code)
	}
	if code, body := h.upload(svc, "application/x-www-form-urlencoded", []byte("a=b")); code != 400 || apiCode(body) != 20001 {
		t.Errorf("a form as media: %d %v", code, body)
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/Services/"+svc+"/Media", bytes.NewReader(photo))
	req.Header.Set("Content-Type", "image/jpeg")
	req.SetBasicAuth(sid, "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("upload with a wrong token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	got, ok := h.emu.Media(me)
	if !ok || !reflect.DeepEqual(got, Attachment{ContentType: "image/jpeg", Data: photo}) {
		t.Errorf("Media(%s) = %+v %v", me, got, ok)
	}
}

// A message created with MediaSid carries it: in its resource, in the onMessageAdded webhook's Media
// parameter, and to the phones (a WhatsApp participant gets the photo without a body). A media SID
// goes with one message only.
func TestMessageWithMedia(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	conv := h.story()
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
		"Configuration.Method", "post", "Configuration.Filters", "onMessageAdded"))
	if _, err := h.emu.Inbound(customer, business, "hi"); err != nil { // the customer's window opens
		t.Fatal(err)
	}
	_, up := h.upload("IS"+sid[2:], "image/png", photo)
	me := up["sid"].(string)
	msg := h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Author", rider, "MediaSid", me), "X-Twilio-Webhook-Enabled", "true")
	wantMedia := []any{map[string]any{"sid": me, "content_type": "image/png", "filename": nil, "size": float64(len(photo)), "category": "media"}}
	if msg["body"] != nil || !reflect.DeepEqual(msg["media"], wantMedia) {
		t.Errorf("message body %v media %v, want null and %v", msg["body"], msg["media"], wantMedia)
	}
	if fetched := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages/"+msg["sid"].(string), nil); !reflect.DeepEqual(fetched["media"], wantMedia) {
		t.Errorf("fetched media %v", fetched["media"])
	}
	if meta := h.must(200, "GET", "/v1/Services/IS"+sid[2:]+"/Media/"+me, nil); meta["message_sid"] != msg["sid"] || meta["channel_sid"] != conv {
		t.Errorf("media after the message: %v", meta)
	}
	lines := h.emu.Transcript(customer)
	last := lines[len(lines)-1]
	if last.Direction != "received" || last.Text != "" || last.Status != "delivered" ||
		!reflect.DeepEqual(last.Media, []MediaInfo{{Sid: me, ContentType: "image/png", Size: int64(len(photo))}}) {
		t.Errorf("customer received %+v", last)
	}

	for _, c := range []struct {
		mediaSid string
		code     int
	}{{me, codeMediaUsed}, {"ME00000000000000000000000000000000", codeMediaNotFound}, {"photo.png", codeMediaSidBad}} {
		if code, body := h.do("POST", "/v1/Conversations/"+conv+"/Messages", vals("MediaSid", c.mediaSid)); code != 400 || apiCode(body) != c.code {
			t.Errorf("MediaSid %s: %d %v, want 400 %d", c.mediaSid, code, body, c.code)
		}
	}
	if n := len(h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages", nil)["messages"].([]any)); n != 2 {
		t.Errorf("%d messages after the refusals, want 2", n)
	}

	_ = h.emu.Close(t.Context())
	var media []string
	for _, f := range rc.forms() {
		if f.Get("MessageSid") == msg["sid"] {
			media = append(media, f.Get("Media"))
		}
	}
	want := `[{"Category":"media","ContentType":"image/png","Filename":null,"Sid":"` + me + `","Size":` + itoa(len(photo)) + `}]`
	if len(media) != 1 || media[0] != want {
		t.Errorf("webhook Media = %q, want %q", media, want)
	}
}

// A phone sends a photo: the message carries it with its caption, the webhook says so, and the other
// phones receive it; over HTTP the file travels as base64 JSON.
func TestPhoneSendsMedia(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	conv := h.story()
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
		"Configuration.Method", "post", "Configuration.Filters", "onMessageAdded"))
	if _, err := h.emu.Inbound(rider, business, "on my way"); err != nil { // the rider's window opens
		t.Fatal(err)
	}
	api := NewClient(h.srv.URL, sid, token)
	m, err := api.InboundMedia(t.Context(), customer, business, "", Attachment{ContentType: "image/jpeg", Filename: "door.jpg", Data: photo})
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "" || len(m.Media) != 1 || m.Media[0].Filename != "door.jpg" || m.Media[0].Size != int64(len(photo)) {
		t.Fatalf("inbound %+v", m)
	}
	got, ok := h.emu.Media(m.Media[0].Sid)
	if !ok || !bytes.Equal(got.Data, photo) {
		t.Errorf("stored media %+v", got)
	}
	lines := h.emu.Transcript(rider)
	if last := lines[len(lines)-1]; last.MessageSid != m.Sid || !reflect.DeepEqual(last.Media, m.Media) || last.Status != "delivered" {
		t.Errorf("rider received %+v", last)
	}
	views, err := api.Messages(t.Context(), conv)
	if err != nil || len(views) != 2 || !reflect.DeepEqual(views[1].Media, m.Media) {
		t.Errorf("messages %+v %v", views, err)
	}
	if _, err := h.emu.InboundMedia(customer, business, "x", Attachment{}); err == nil {
		t.Error("media without content accepted")
	}
	_ = h.emu.Close(t.Context())
	var fired []string
	for _, f := range rc.forms() {
		if f.Get("MessageSid") == m.Sid {
			fired = append(fired, f.Get("Author")+" "+f.Get("Media"))
		}
	}
	if len(fired) != 1 || !strings.Contains(fired[0], `"Filename":"door.jpg"`) || !strings.HasPrefix(fired[0], customer+" [") {
		t.Errorf("webhooks %q", fired)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
