// Package emulator is an in-memory Twilio Conversations: the REST resources the opt-in uses, the phones
// on the other side (inbound messages, what each phone received, WhatsApp's 24-hour rule), the
// conversation-scoped webhooks Twilio fires, and fault injection. Serve it with net/http.
package emulator

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure an Emulator.
type Options struct {
	// AccountSid and AuthToken are the credentials the REST API accepts and the key webhooks are signed with.
	AccountSid string
	AuthToken  string
	// APIKey and APISecret, when set, are accepted as REST credentials too.
	APIKey    string
	APISecret string
	// Contents maps Content SIDs (HX…) to template text with {{1}}-style placeholders.
	Contents map[string]string
	// Faults are active from the start.
	Faults []Fault
	// Now is the emulator's clock; nil means time.Now. Advance moves it forward.
	Now func() time.Time
	// WebhookTimeout is how long a fired webhook may take; Twilio's is 5 s.
	WebhookTimeout time.Duration
	// Seed makes rate-based faults repeatable.
	Seed uint64
	// CreateRate, when positive, is how many conversations may be created per second, as Twilio
	// limits them per service: beyond it a create answers 429 with code 20429 and Retry-After.
	CreateRate int
	// NotOnWhatsApp lists phone numbers (+E164) with no WhatsApp account: a WhatsApp message to them
	// is undelivered with 63003. SetNotOnWhatsApp adds more.
	NotOnWhatsApp []string
	// Numbers are the account's phone numbers from the start; SetNumber adds more.
	Numbers []PhoneNumber
	// Phones say how phones answer calls, by number (+E164); SetPhone changes them.
	Phones map[string]Phone
	// RequestLog is how many of the newest REST requests Requests keeps: 0 means 10,000, a negative
	// number none.
	RequestLog int
}

// Emulator holds the state of one Twilio account.
type Emulator struct {
	opts    Options
	mux     *http.ServeMux
	hooks   *http.Client
	pending sync.WaitGroup

	mu            sync.Mutex
	seq           uint64
	offset        time.Duration
	conversations []*conversation // creation order
	lastInbound   map[string]time.Time
	transcripts   map[string][]Entry
	calls         []WebhookCall
	requests      []Request
	faults        []*faultState
	restCalls     int
	rng           *rand.Rand
	// creates holds the times of the conversation creates of the last second, for CreateRate.
	creates []time.Time
	// notOnWhatsApp holds the numbers without a WhatsApp account.
	notOnWhatsApp map[string]bool
	// limited counts the creates refused by CreateRate.
	limited int
	// media is the Media Content Service, by ME SID.
	media map[string]*media
	// started is when the account's default Conversation Service was made.
	started time.Time
	// numbers are the account's phone numbers.
	numbers []*number
	// accountHooks and serviceHooks are the Conversations webhook configurations of the account and
	// of its Conversation Service.
	accountHooks, serviceHooks WebhookConfiguration
	// phones say how phones answer calls.
	phones map[string]Phone
	// callMu guards voiceCalls, the calls placed (oldest first), and serializes their progress:
	// what a call does next is decided by one goroutine, which makes its HTTP requests without
	// holding e.mu. It is taken before e.mu, never after.
	callMu     sync.Mutex
	voiceCalls []*call
}

type conversation struct {
	Sid, FriendlyName, UniqueName, Attributes, State, MessagingServiceSid string
	Created, Updated                                                      time.Time
	// closedAfter is Timers.Closed: the conversation closes after this long without activity;
	// inactiveAfter, Timers.Inactive, makes it inactive.
	closedAfter, inactiveAfter time.Duration
	participants               []*participant
	messages                   []*message
	webhooks                   []*webhook
}

type participant struct {
	Sid, Identity, Attributes, Address, ProxyAddress string
	// ProjectedAddress is the number a chat participant of a group MMS shows the others.
	ProjectedAddress string
	Created, Updated time.Time
}

type message struct {
	Sid, Author, Body, ContentSid, ContentVariables, Attributes, ParticipantSid string
	Index                                                                       int
	Created, Updated                                                            time.Time
	delivered, failed, undelivered, total                                       int
	receipts                                                                    []*receipt
	media                                                                       []*media
}

// receipt is a message's delivery to one participant (Twilio's Delivery Receipt).
type receipt struct {
	Sid, ParticipantSid, ChannelMessageSid, Status string
	ErrorCode                                      int
	Created, Updated                               time.Time
}

type webhook struct {
	Sid, Target, URL, Method, FlowSid string
	Filters, Triggers                 []string
	ReplayAfter                       *int
	Created, Updated                  time.Time
}

// Entry is one line of a phone's transcript.
type Entry struct {
	// Direction is "received" (the phone got it) or "sent" (the phone wrote it).
	Direction  string `json:"direction"`
	Peer       string `json:"peer"`
	Text       string `json:"text"`
	ContentSid string `json:"content_sid,omitempty"`
	// Media are the files that came with the message (a photo); Emulator.Media reads their content.
	Media           []MediaInfo `json:"media,omitempty"`
	Status          string      `json:"status"`
	ErrorCode       int         `json:"error_code,omitempty"`
	ConversationSid string      `json:"conversation_sid"`
	MessageSid      string      `json:"message_sid"`
	At              time.Time   `json:"at"`
}

// WebhookCall is one webhook the emulator fired.
type WebhookCall struct {
	WebhookSid string `json:"webhook_sid"`
	Method     string `json:"method"`
	URL        string `json:"url"`
	EventType  string `json:"event_type"`
	MessageSid string `json:"message_sid"`
	Status     int    `json:"status"`
	Error      string `json:"error,omitempty"`
}

// New returns an Emulator with no conversations.
func New(opts Options) (*Emulator, error) {
	if opts.AccountSid == "" || opts.AuthToken == "" {
		return nil, errors.New("emulator: AccountSid and AuthToken are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 5 * time.Second
	}
	e := &Emulator{
		opts:          opts,
		hooks:         &http.Client{Timeout: opts.WebhookTimeout},
		lastInbound:   map[string]time.Time{},
		transcripts:   map[string][]Entry{},
		notOnWhatsApp: map[string]bool{},
		media:         map[string]*media{},
		rng:           rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
	if err := e.SetFaults(opts.Faults); err != nil {
		return nil, err
	}
	for _, n := range opts.NotOnWhatsApp {
		e.notOnWhatsApp[n] = true
	}
	e.started = e.now()
	e.phones = map[string]Phone{}
	for n, p := range opts.Phones {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		e.phones[normalizeNumber(n)] = p
	}
	for _, n := range opts.Numbers {
		e.setNumberLocked(n)
	}
	e.routes()
	return e, nil
}

// ServeHTTP serves the REST API under /v1 and the emulator's own endpoints under /emulator.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isAPIPath(r.URL.Path) {
		e.logRequest(r)
	}
	e.mux.ServeHTTP(w, r)
}

// Close waits for fired webhooks to finish, at most until ctx ends.
func (e *Emulator) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { e.pending.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Advance moves the emulator's clock forward, e.g. past WhatsApp's 24-hour window.
// Calls' Dials the clock reaches ring out, answer or end, and their actions are posted, before it
// returns.
func (e *Emulator) Advance(d time.Duration) {
	e.mu.Lock()
	e.offset += d
	e.expireLocked()
	e.mu.Unlock()
	e.progressCalls()
}

func (e *Emulator) now() time.Time { return e.opts.Now().Add(e.offset).UTC() }

// newSid returns prefix + 32 hex digits, unique within the emulator. Callers hold e.mu.
func (e *Emulator) newSid(prefix string) string {
	e.seq++
	return fmt.Sprintf("%s%016x%016x", prefix, e.rng.Uint64(), e.seq)
}

// Transcript returns what one phone sent and received, oldest first.
func (e *Emulator) Transcript(address string) []Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Entry(nil), e.transcripts[address]...)
}

// Transcripts returns every phone's transcript.
func (e *Emulator) Transcripts() map[string][]Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string][]Entry, len(e.transcripts))
	for k, v := range e.transcripts {
		out[k] = append([]Entry(nil), v...)
	}
	return out
}

// WebhookCalls returns every webhook fired so far, in the order they finished.
func (e *Emulator) WebhookCalls() []WebhookCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]WebhookCall(nil), e.calls...)
}

func (e *Emulator) find(sid string) *conversation {
	for _, c := range e.conversations {
		if c.Sid == sid || (c.UniqueName != "" && c.UniqueName == sid) {
			return c
		}
	}
	return nil
}

// channel is the binding type of an address: whatsapp, or sms for a bare phone number.
func channel(address string) string {
	if strings.HasPrefix(address, "whatsapp:") {
		return "whatsapp"
	}
	return "sms"
}

// NewCredentials returns a random account SID and auth token of Twilio's shapes, for runs that need
// no real account.
func NewCredentials() (accountSid, authToken string) {
	b := make([]byte, 32)
	_, _ = cryptorand.Read(b)
	return "AC" + hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
}

// RateLimited counts the conversation creates refused by Options.CreateRate.
func (e *Emulator) RateLimited() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.limited
}

// RESTCalls counts the authenticated REST calls received so far.
func (e *Emulator) RESTCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restCalls
}

// MessageView is a message as Conversation shows it.
type MessageView struct {
	Sid, Author, Body, ContentSid, Attributes string
	Media                                     []MediaInfo
	ContentVariables                          string
}

// ConversationView is what a conversation holds, for assertions in tests.
type ConversationView struct {
	Sid        string
	UniqueName string
	State      string
	Messages   []MessageView
	Webhooks   []string
	// Participants are the participants' addresses.
	Participants []string
	// Bindings are the messaging participants' bindings, in the order they joined.
	Bindings []Binding
}

// Conversation returns a conversation's messages (oldest first) and remaining scoped webhooks.
func (e *Emulator) Conversation(sid string) (ConversationView, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(sid)
	if c == nil {
		return ConversationView{}, false
	}
	return viewOf(c), true
}

// Conversations returns every conversation, in the order they were created.
func (e *Emulator) Conversations() []ConversationView {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ConversationView, 0, len(e.conversations))
	for _, c := range e.conversations {
		out = append(out, viewOf(c))
	}
	return out
}

// viewOf copies what tests read of a conversation. Callers hold e.mu.
func viewOf(c *conversation) ConversationView {
	v := ConversationView{Sid: c.Sid, UniqueName: c.UniqueName, State: c.State}
	for _, m := range c.messages {
		v.Messages = append(v.Messages, MessageView{Sid: m.Sid, Author: m.Author, Body: m.Body, ContentSid: m.ContentSid, Attributes: m.Attributes,
			Media: infos(m.media), ContentVariables: m.ContentVariables})
	}
	for _, h := range c.webhooks {
		v.Webhooks = append(v.Webhooks, h.Sid)
	}
	for _, p := range c.participants {
		v.Participants = append(v.Participants, p.Address)
		if p.Address != "" {
			v.Bindings = append(v.Bindings, Binding{Address: p.Address, ProxyAddress: p.ProxyAddress})
		}
	}
	return v
}
