package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Twilio's Media Content Service (MCS) keeps the files of media messages: an upload answers an ME SID,
// which one message create may then attach (MediaSid). Twilio serves it from mcs.us1.twilio.com; the
// emulator serves it beside the REST API, under /v1/Services/{ChatServiceSid}/Media.

// maxMediaUpload bounds what the emulator keeps of one upload.
const maxMediaUpload = 64 << 20

// Twilio's codes for a message's MediaSid.
const (
	codeMediaNotFound = 50507 // no media with that SID
	codeMediaUsed     = 50508 // the media is already attached to another message
	codeMediaSidBad   = 50510 // not an ME SID
)

var mediaSidRE = regexp.MustCompile(`^ME[0-9a-fA-F]{32}$`)

// media is one file in the Media Content Service.
type media struct {
	Sid, ContentType, Filename, Author string
	Data                               []byte
	Created                            time.Time
	// ConversationSid and MessageSid are set once a message carries it; a media SID goes with one message.
	ConversationSid, MessageSid string
	// token makes the unauthenticated, temporary content URL.
	token string
}

// Attachment is a file a phone sends with a message (InboundMedia), or the content of a media
// (Emulator.Media). In JSON its Data is base64.
type Attachment struct {
	ContentType string `json:"content_type"`
	Filename    string `json:"filename,omitempty"`
	Data        []byte `json:"data"`
}

// MediaInfo describes one media of a message, as the message resource lists it.
type MediaInfo struct {
	Sid         string `json:"sid"`
	ContentType string `json:"content_type"`
	Filename    string `json:"filename,omitempty"`
	Size        int64  `json:"size"`
}

func (m *media) info() MediaInfo {
	return MediaInfo{Sid: m.Sid, ContentType: m.ContentType, Filename: m.Filename, Size: int64(len(m.Data))}
}

func infos(ms []*media) []MediaInfo {
	var out []MediaInfo
	for _, m := range ms {
		out = append(out, m.info())
	}
	return out
}

// Media returns a media's content by its ME SID, as a test reads what a phone received.
func (e *Emulator) Media(sid string) (Attachment, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.media[sid]
	if m == nil {
		return Attachment{}, false
	}
	return Attachment{ContentType: m.ContentType, Filename: m.Filename, Data: bytes.Clone(m.Data)}, true
}

// storeMediaLocked keeps a file and returns its media. Callers hold e.mu.
func (e *Emulator) storeMediaLocked(a Attachment, author string) *media {
	m := &media{Sid: e.newSid("ME"), ContentType: a.ContentType, Filename: a.Filename, Author: author,
		Data: bytes.Clone(a.Data), Created: e.now(), token: randomToken()}
	e.media[m.Sid] = m
	return m
}

// mediaJSON is the MCS resource: its links lead to the content (authenticated) and to a temporary
// URL that needs no credentials, as Twilio's content_direct_temporary.
func (e *Emulator) mediaJSON(api string, m *media) map[string]any {
	u := api + "/Services/" + e.serviceSid() + "/Media/" + m.Sid
	return map[string]any{
		"sid": m.Sid, "account_sid": e.opts.AccountSid, "service_sid": e.serviceSid(),
		"date_created": ts(m.Created), "date_upload_updated": ts(m.Created), "date_updated": ts(m.Created),
		"channel_sid": nullable(m.ConversationSid), "message_sid": nullable(m.MessageSid),
		"size": len(m.Data), "content_type": m.ContentType, "filename": nullable(m.Filename), "author": m.Author,
		"category": "media", "url": u,
		"links": map[string]any{"content": u + "/Content", "content_direct_temporary": strings.TrimSuffix(api, "/v1") + "/emulator/media/" + m.Sid + "/" + m.token},
	}
}

// rawBody is an answer that is not JSON: a media's content.
type rawBody struct {
	contentType string
	data        []byte
}

// bufferBody reads an authenticated request's body, at most limit bytes, before the handler runs, so
// that the handler, which holds the emulator's lock, never waits on a slow client.
func (e *Emulator) bufferBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.authorized(r) {
			next.ServeHTTP(w, r) // refused there, unread
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			writeAPIError(w, apiError{http.StatusRequestEntityTooLarge, 20001, fmt.Sprintf("media larger than %d bytes", limit)})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		next.ServeHTTP(w, r)
	})
}

// createMedia is an upload: the raw bytes as the body, their type as Content-Type.
func (e *Emulator) createMedia(r *http.Request, base string) (int, any, *apiError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" || strings.HasPrefix(ct, "multipart/") || strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		bad := badParam("upload the file as the body, with its type as Content-Type")
		return 0, nil, &bad
	}
	data, _ := io.ReadAll(r.Body) // buffered by bufferBody
	if len(data) == 0 {
		bad := badParam("empty media")
		return 0, nil, &bad
	}
	m := e.storeMediaLocked(Attachment{ContentType: ct, Data: data}, "system")
	return http.StatusCreated, e.mediaJSON(base, m), nil
}

func (e *Emulator) fetchMedia(r *http.Request, base string) (int, any, *apiError) {
	m := e.media[r.PathValue("sid")]
	if m == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.mediaJSON(base, m), nil
}

func (e *Emulator) mediaContent(r *http.Request, _ string) (int, any, *apiError) {
	m := e.media[r.PathValue("sid")]
	if m == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, rawBody{m.ContentType, m.Data}, nil
}

// handleTemporaryMedia serves content_direct_temporary: no credentials, the token is the key.
func (e *Emulator) handleTemporaryMedia(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	m := e.media[r.PathValue("sid")]
	var body rawBody
	if m != nil && m.token == r.PathValue("token") {
		body = rawBody{m.ContentType, m.Data}
	}
	e.mu.Unlock()
	if body.data == nil {
		writeAPIError(w, errNotFound)
		return
	}
	writeRaw(w, http.StatusOK, body)
}

func writeRaw(w http.ResponseWriter, status int, b rawBody) {
	w.Header().Set("Content-Type", b.contentType)
	w.WriteHeader(status)
	_, _ = w.Write(b.data)
}

// attachable finds the media a message create names, which no other message may carry yet.
// Callers hold e.mu.
func (e *Emulator) attachable(sid string) (*media, *apiError) {
	if !mediaSidRE.MatchString(sid) {
		return nil, &apiError{400, codeMediaSidBad, "MediaSid must be a media SID (ME followed by 32 hex digits)"}
	}
	m := e.media[sid]
	switch {
	case m == nil:
		return nil, &apiError{400, codeMediaNotFound, "Media not found"}
	case m.MessageSid != "":
		return nil, &apiError{400, codeMediaUsed, "Media already sent with another message"}
	}
	return m, nil
}

// mediaParam is the webhooks' Media parameter: a JSON array of the message's media.
func mediaParam(ms []*media) string {
	out := make([]map[string]any, 0, len(ms))
	for _, m := range ms {
		out = append(out, map[string]any{"Sid": m.Sid, "Filename": nullable(m.Filename), "ContentType": m.ContentType,
			"Size": len(m.Data), "Category": "media"})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// mediaList is a message resource's media field: null without media.
func mediaList(ms []*media) any {
	if len(ms) == 0 {
		return nil
	}
	out := make([]map[string]any, 0, len(ms))
	for _, m := range ms {
		out = append(out, map[string]any{"sid": m.Sid, "content_type": m.ContentType, "filename": nullable(m.Filename),
			"size": len(m.Data), "category": "media"})
	}
	return out
}
