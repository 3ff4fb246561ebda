package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// window is WhatsApp's customer service window: free-form messages only within 24 h of the user's last message.
const window = 24 * time.Hour

// ErrNoBinding means no active conversation holds the address and proxy address of an inbound message.
var ErrNoBinding = errors.New("no active conversation holds this address and proxy address")

// Message is a message as Inbound returns it.
type Message struct {
	Sid             string      `json:"sid"`
	ConversationSid string      `json:"conversation_sid"`
	Index           int         `json:"index"`
	Author          string      `json:"author"`
	Body            string      `json:"body"`
	Media           []MediaInfo `json:"media,omitempty"`
	// Dropped: the pre-event hook (onMessageAdd) refused the message; it was never published.
	Dropped bool `json:"dropped,omitempty"`
	// Replies are what the number's SMS URL answered a message no conversation took, as sent back.
	Replies []string `json:"replies,omitempty"`
}

// Inbound delivers a message a phone sent to a Twilio number: into the conversation holding that
// binding, to the other participants, and to the conversation's onMessageAdded webhooks. A
// pre-event hook (onMessageAdd, service or account level) sees it first and may change or drop it
// (Message.Dropped). With no active conversation on the pair, the number's SMS URL gets it and its
// TwiML replies reach the phone; a number without one: ErrNoBinding.
func (e *Emulator) Inbound(from, to, body string) (Message, error) {
	return e.inbound(from, to, body, nil)
}

// InboundMedia is Inbound with a file (a photo of the door): Twilio keeps it in the Media Content
// Service and the message carries it; body, the caption, may be empty.
func (e *Emulator) InboundMedia(from, to, body string, a Attachment) (Message, error) {
	if a.ContentType == "" || len(a.Data) == 0 {
		return Message{}, errors.New("media needs a content type and data")
	}
	return e.inbound(from, to, body, &a)
}

func (e *Emulator) inbound(from, to, body string, a *Attachment) (Message, error) {
	e.mu.Lock()
	c, p := e.bindingLocked(from, to)
	if c == nil {
		n := e.numberLocked(to)
		e.mu.Unlock()
		if n != nil && n.SMSURL != "" {
			return e.incomingMessage(from, to, body, a != nil, n.PhoneNumber)
		}
		return Message{}, ErrNoBinding
	}
	var attached []*media
	if a != nil {
		attached = append(attached, e.storeMediaLocked(*a, from))
	}
	written, author, attrs := body, from, "{}"
	if target, method := e.preEventURL(); target != "" {
		params := e.preEventParams(c, p, body, attached)
		e.mu.Unlock() // the hook may call the REST API
		verdict := e.preEvent(target, method, params)
		e.mu.Lock()
		if verdict.drop {
			defer e.mu.Unlock()
			e.transcripts[from] = append(e.transcripts[from], Entry{Direction: "sent", Peer: to, Text: body, Media: infos(attached), Status: "dropped",
				ConversationSid: c.Sid, At: e.now()})
			return Message{ConversationSid: c.Sid, Author: from, Body: body, Media: infos(attached), Dropped: true}, nil
		}
		if c.State == "closed" || !slices.Contains(e.conversations, c) {
			e.mu.Unlock()
			return Message{}, ErrNoBinding // the conversation closed while the hook answered
		}
		for _, change := range []struct{ dst, v *string }{{&body, verdict.body}, {&author, verdict.author}, {&attrs, verdict.attributes}} {
			if change.v != nil {
				*change.dst = *change.v
			}
		}
	}
	defer e.mu.Unlock()
	now := e.now()
	e.lastInbound[from+"|"+to] = now
	if c.State == "inactive" {
		e.setStateLocked(c, "active", "EVENT") // a message reactivates an inactive conversation
	}
	m := e.addMessageFrom(c, p, author, body, "", "", attrs, attached)
	e.transcripts[from] = append(e.transcripts[from], Entry{Direction: "sent", Peer: to, Text: written, Media: infos(m.media), Status: "sent",
		ConversationSid: c.Sid, MessageSid: m.Sid, At: now})
	e.fireLocked(c, m, strings.ToUpper(channel(from)))
	return Message{Sid: m.Sid, ConversationSid: c.Sid, Index: m.Index, Author: m.Author, Body: m.Body, Media: infos(m.media)}, nil
}

func (e *Emulator) bindingLocked(address, proxy string) (*conversation, *participant) {
	for i := len(e.conversations) - 1; i >= 0; i-- {
		c := e.conversations[i]
		if c.State == "closed" {
			continue
		}
		for _, p := range c.participants {
			if p.Address == address && p.ProxyAddress == proxy {
				return c, p
			}
		}
	}
	return nil, nil
}

// addMessage appends a message, with its media, and delivers it to every phone in the conversation
// but its author: WhatsApp and MMS carry the media, with or without a body. Callers hold e.mu.
func (e *Emulator) addMessage(c *conversation, author, body, contentSid, contentVars, attrs string, attached []*media) *message {
	return e.addMessageFrom(c, nil, author, body, contentSid, contentVars, attrs, attached)
}

// addMessageFrom is addMessage for a message of participant from, whatever its author says (a
// pre-event hook may have changed it); nil: the participant the author names. Callers hold e.mu.
func (e *Emulator) addMessageFrom(c *conversation, from *participant, author, body, contentSid, contentVars, attrs string, attached []*media) *message {
	if attrs == "" {
		attrs = "{}"
	}
	now := e.now()
	m := &message{Sid: e.newSid("IM"), Author: author, Body: body, ContentSid: contentSid, ContentVariables: contentVars,
		Attributes: attrs, Index: len(c.messages), Created: now, Updated: now, media: attached}
	for _, md := range attached {
		md.ConversationSid, md.MessageSid = c.Sid, m.Sid
	}
	for _, p := range c.participants {
		if from == nil && (p.Address == author || (p.Identity != "" && p.Identity == author)) {
			m.ParticipantSid = p.Sid
		}
	}
	if from != nil {
		m.ParticipantSid = from.Sid
	}
	c.messages = append(c.messages, m)
	text := body
	if contentSid != "" {
		text = e.render(contentSid, contentVars)
	}
	for _, p := range c.participants {
		if p.Address == "" || p.Sid == m.ParticipantSid {
			continue
		}
		m.total++
		entry := Entry{Direction: "received", Peer: p.ProxyAddress, Text: text, ContentSid: contentSid, Media: infos(attached), Status: "delivered",
			ConversationSid: c.Sid, MessageSid: m.Sid, At: now}
		whatsapp := channel(p.Address) == "whatsapp"
		switch {
		case whatsapp && e.notOnWhatsApp[strings.TrimPrefix(p.Address, "whatsapp:")]:
			entry.Status, entry.ErrorCode = "undelivered", codeNotOnWhatsApp
			m.undelivered++
		case whatsapp && contentSid == "" && !e.windowOpen(p.Address, p.ProxyAddress, now):
			entry.Status, entry.ErrorCode = "failed", 63016
			m.failed++
		default:
			m.delivered++
		}
		prefix := "SM"
		if whatsapp {
			prefix = "WA"
		}
		m.receipts = append(m.receipts, &receipt{Sid: e.newSid("DY"), ParticipantSid: p.Sid, ChannelMessageSid: e.newSid(prefix),
			Status: entry.Status, ErrorCode: entry.ErrorCode, Created: now, Updated: now})
		e.transcripts[p.Address] = append(e.transcripts[p.Address], entry)
	}
	e.fireDeliveryLocked(c, m)
	return m
}

// codeNotOnWhatsApp is Twilio's error for a WhatsApp message to a number without an account.
const codeNotOnWhatsApp = 63003

// fireDeliveryLocked sends onDeliveryUpdated, with Twilio's parameters, for each receipt of m to each
// webhook that asks for it. Callers hold e.mu.
func (e *Emulator) fireDeliveryLocked(c *conversation, m *message) {
	for _, h := range c.webhooks {
		if h.Target != "webhook" || !hasFilter(h.Filters, "onDeliveryUpdated") {
			continue
		}
		for _, r := range m.receipts {
			params := url.Values{
				"AccountSid":         {e.opts.AccountSid},
				"ChatServiceSid":     {e.serviceSid()},
				"ConversationSid":    {c.Sid},
				"EventType":          {"onDeliveryUpdated"},
				"MessageSid":         {m.Sid},
				"DeliveryReceiptSid": {r.Sid},
				"ChannelMessageSid":  {r.ChannelMessageSid},
				"ParticipantSid":     {r.ParticipantSid},
				"Status":             {r.Status},
				"DateCreated":        {r.Created.Format("2006-01-02T15:04:05.000Z")},
				"DateUpdated":        {r.Updated.Format("2006-01-02T15:04:05.000Z")},
				"RetryCount":         {"0"},
				"WebhookSid":         {h.Sid},
				"WebhookType":        {"webhook"},
			}
			if r.ErrorCode != 0 {
				params.Set("ErrorCode", strconv.Itoa(r.ErrorCode))
			}
			e.deliverLocked(h, "onDeliveryUpdated", m.Sid, params)
		}
	}
}

// SetNotOnWhatsApp makes number (+E164) one with no WhatsApp account: WhatsApp messages to it are
// undelivered with 63003 from now on.
func (e *Emulator) SetNotOnWhatsApp(number string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notOnWhatsApp[number] = true
}

func (e *Emulator) windowOpen(address, proxy string, now time.Time) bool {
	last, ok := e.lastInbound[address+"|"+proxy]
	return ok && now.Sub(last) < window
}

var placeholder = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// render fills a content template with its variables; an unknown template shows its SID.
func (e *Emulator) render(contentSid, vars string) string {
	tmpl, ok := e.opts.Contents[contentSid]
	if !ok {
		tmpl = "[content " + contentSid + "]"
	}
	var values map[string]any
	_ = json.Unmarshal([]byte(vars), &values)
	return placeholder.ReplaceAllStringFunc(tmpl, func(s string) string {
		if v, ok := values[placeholder.FindStringSubmatch(s)[1]]; ok {
			if str, ok := v.(string); ok {
				return str
			}
			b, _ := json.Marshal(v)
			return string(b)
		}
		return s
	})
}

// fireLocked sends onMessageAdded to each of the conversation's webhooks that asks for it.
func (e *Emulator) fireLocked(c *conversation, m *message, source string) {
	for _, h := range c.webhooks {
		e.fireOneLocked(c, m, h, source)
	}
}

func (e *Emulator) fireOneLocked(c *conversation, m *message, h *webhook, source string) {
	if h.Target != "webhook" || !hasFilter(h.Filters, "onMessageAdded") {
		return
	}
	params := url.Values{
		"AccountSid":      {e.opts.AccountSid},
		"ChatServiceSid":  {e.serviceSid()},
		"ConversationSid": {c.Sid},
		"EventType":       {"onMessageAdded"},
		"MessageSid":      {m.Sid},
		"Index":           {strconv.Itoa(m.Index)},
		"Author":          {m.Author},
		"Body":            {m.Body},
		"Attributes":      {m.Attributes},
		"DateCreated":     {m.Created.Format("2006-01-02T15:04:05.000Z")},
		"Source":          {source},
		"RetryCount":      {"0"},
		"WebhookSid":      {h.Sid},
		"WebhookType":     {"webhook"},
	}
	if m.ParticipantSid != "" {
		params.Set("ParticipantSid", m.ParticipantSid)
	}
	if len(m.media) > 0 {
		params.Set("Media", mediaParam(m.media))
	}
	if c.MessagingServiceSid != "" {
		params.Set("MessagingServiceSid", c.MessagingServiceSid)
	}
	e.deliverLocked(h, "onMessageAdded", m.Sid, params)
}

// deliverLocked sends one event to one webhook in the background, as Twilio does, and records the
// call. Callers hold e.mu.
func (e *Emulator) deliverLocked(h *webhook, event, messageSid string, params url.Values) {
	call := WebhookCall{WebhookSid: h.Sid, Method: h.Method, EventType: event, MessageSid: messageSid}
	e.pending.Add(1)
	go func() {
		defer e.pending.Done()
		call.URL, call.Status, call.Error = e.send(h.URL, h.Method, params)
		e.mu.Lock()
		e.calls = append(e.calls, call)
		e.mu.Unlock()
	}()
}

func hasFilter(filters []string, event string) bool {
	for _, f := range filters {
		if strings.EqualFold(f, event) {
			return true
		}
	}
	return false
}

// handleInbound is a phone writing: a form (From, To, Body), or JSON that may carry a file too
// ({"From","To","Body","Media":{"content_type","filename","data" in base64}}).
func (e *Emulator) handleInbound(w http.ResponseWriter, r *http.Request) {
	in := struct {
		From, To, Body string
		Media          *Attachment
	}{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxMediaUpload)).Decode(&in); err != nil {
			writeAPIError(w, badParam("inbound: body is not JSON"))
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			writeAPIError(w, badParam("inbound: malformed form"))
			return
		}
		field := func(name string) string {
			if v := r.PostForm.Get(name); v != "" {
				return v
			}
			return r.PostForm.Get(strings.ToLower(name))
		}
		in.From, in.To, in.Body = field("From"), field("To"), field("Body")
	}
	if in.From == "" || in.To == "" || (in.Body == "" && in.Media == nil) {
		writeAPIError(w, badParam("inbound: From, To and Body (or Media) are required"))
		return
	}
	var m Message
	var err error
	if in.Media != nil {
		if in.Media.ContentType == "" || len(in.Media.Data) == 0 {
			writeAPIError(w, badParam("inbound: Media needs content_type and data"))
			return
		}
		m, err = e.InboundMedia(in.From, in.To, in.Body, *in.Media)
	} else {
		m, err = e.Inbound(in.From, in.To, in.Body)
	}
	if err != nil {
		writeAPIError(w, apiError{404, 20404, err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, m)
}

func (e *Emulator) handleTranscripts(w http.ResponseWriter, r *http.Request) {
	all := e.Transcripts()
	if a := r.URL.Query().Get("address"); a != "" {
		all = map[string][]Entry{a: all[a]}
		if all[a] == nil {
			all[a] = []Entry{}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"transcripts": all})
}

func (e *Emulator) handleWebhookCalls(w http.ResponseWriter, _ *http.Request) {
	calls := e.WebhookCalls()
	if calls == nil {
		calls = []WebhookCall{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhook_calls": calls})
}

func (e *Emulator) handleClock(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeAPIError(w, badParam("clock: malformed form"))
		return
	}
	d, err := time.ParseDuration(r.PostForm.Get("advance"))
	if err != nil || d < 0 {
		writeAPIError(w, badParam("clock: advance must be a positive duration such as 25h"))
		return
	}
	e.Advance(d)
	e.mu.Lock()
	now := e.now()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"now": ts(now)})
}
