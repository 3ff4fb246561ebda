// Package chat is a delivery chat's lifecycle when the service owns it: start (the guide's steps 1–7 in
// one idempotent call), status, end. It declares the small ports it needs — the Conversations calls it
// makes and the Store it keeps chats in — and knows nothing of HTTP or twilio-go.
package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/optinkit/optin/internal/conversation"
)

// State is where a chat stands.
type State string

const (
	// StateStarting: the start's steps are running, or were cut off and wait for the call to be repeated.
	StateStarting   State = "starting"
	StateInvited    State = "invited"
	StateConnecting State = "connecting"
	StateConnected  State = "connected"
	StateDeclined   State = "declined"
	StateFailed     State = "failed"
	StateClosed     State = "closed"
)

// Final reports whether nothing changes the state any more.
func (s State) Final() bool { return s == StateDeclined || s == StateFailed || s == StateClosed }

// States lists every state, in lifecycle order.
var States = []State{StateStarting, StateInvited, StateConnecting, StateConnected, StateDeclined, StateFailed, StateClosed}

// Reasons a chat ended.
const (
	ReasonDeclined = "declined"
	ReasonOptedOut = "opted_out"
	ReasonEnded    = "ended"
	ReasonExpired  = "expired"
	ReasonFailed   = "failed"
)

// Party is one side of a chat.
type Party struct {
	// Address is the person's (whatsapp:+E164, or +E164 for SMS); ProxyAddress the business number
	// they talk to.
	Address, ProxyAddress, Name string
	// Held are the messages that did not reach this party because their window was closed, in the
	// conversation's order; each is sent again once the party writes.
	Held []Held `json:",omitempty"`
	// NudgedAt is when the party was last nudged; NudgedFor the window that nudge was for (its last
	// inbound message, zero when none was seen): one nudge per closed window.
	NudgedAt, NudgedFor time.Time `json:",omitzero"`
	// Nudging is set while a nudge is decided but not known to be sent: a later run looks for it first.
	Nudging bool `json:",omitempty"`
	// AfterEndAt is when the party, writing after the chat ended, was last answered.
	AfterEndAt time.Time `json:",omitzero"`
}

// Held is a message kept for a party whose window was closed when it was sent.
type Held struct {
	// MessageSid is the message that failed; its copy carries it in a marker, so it is sent once.
	MessageSid string
	Index      int
	// Author wrote it (the other party): the copy is authored by them, so that only this party gets it.
	Author, Body string
	// Created is when Twilio created the message (Twilio's clock); HeldAt when it was held (this one's).
	Created, HeldAt time.Time
	// Sending is set before the copy is created: a run that finds it set looks for the copy first.
	Sending bool `json:",omitempty"`
	// Early marks a customer's message held while the chat was invited: it may be the answer itself,
	// which the rider is not sent again. It counts once the chat is connecting and it is not.
	Early bool `json:",omitempty"`
	// Media are the original's attachments: its copy carries copies of them.
	Media []Media `json:",omitempty"`
	// Attempts counts the runs whose copy failed for a while (Twilio away): past maxCopyAttempts the
	// message is dropped, so that the messages behind it go.
	Attempts int `json:",omitempty"`
}

// Channels of an address.
const (
	ChannelWhatsApp = "whatsapp"
	ChannelSMS      = "sms"
)

// Channel is the party's channel: WhatsApp, or SMS for a bare phone number.
func (p Party) Channel() string { return channelOf(p.Address) }

func channelOf(address string) string {
	if strings.HasPrefix(address, "whatsapp:") {
		return ChannelWhatsApp
	}
	return ChannelSMS
}

// Modes of a chat.
const (
	// ModeOptIn: the customer is invited and their answer decides (the guide's third pattern).
	ModeOptIn = "optin"
	// ModeDirect: the conversation and both participants only, connected at once (the guide's first
	// two patterns): for when the customer wrote first, or a party is on SMS.
	ModeDirect = "direct"
)

// Invite is the message that asks the customer to chat: a Content template, or a body (which reaches a
// customer only inside WhatsApp's 24-hour window).
type Invite struct {
	ContentSid       string
	ContentVariables map[string]string
	Body             string
}

// Transition is one entry of a chat's history.
type Transition struct {
	State State
	At    time.Time
	// Channel, when set, says the customer moved to this channel then (the state stayed as it was).
	Channel string `json:",omitempty"`
}

// Failure is what made a chat fail.
type Failure struct {
	TwilioCode int
	Detail     string
	// Step is the start step that failed; empty when the chat failed later, during the opt-in.
	Step string
}

// Chat is one delivery chat.
type Chat struct {
	ID              string
	ConversationSid string
	// Mode is ModeOptIn or ModeDirect.
	Mode            string
	State           State
	Reason          string
	Customer, Rider Party
	Invite          Invite
	TTL             time.Duration
	// Metadata is the platform's JSON object, echoed back as given.
	Metadata  []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
	Error     *Failure
	History   []Transition
	// Fingerprint identifies the start request, so that a repeated start can be told from a conflicting one.
	Fingerprint string
	// Steps maps each start step done to what it left behind.
	Steps map[string]string
	// Seq orders chats by creation across replicas; List pages by it.
	Seq int64
	// Pending holds the events not yet delivered to the platform, written with the transition that
	// made them (an outbox), removed once delivered.
	Pending []Event
	// Ending, while the chat is closing, is the final state it is headed for (see Ending).
	Ending *Ending `json:",omitempty"`
	// Answer is the customer's message that answered the invitation (its SID), once the opt-in runs.
	Answer string `json:",omitempty"`
	// Fallback, while the customer is being moved from WhatsApp to SMS, is how far the move got.
	Fallback *Fallback `json:",omitempty"`
	// Undelivered are the failed deliveries reported and not acted on yet (at most maxUndelivered);
	// Handled the indexes of the messages whose failure was acted on: neither a repeated report, however
	// late, nor the reconciler acts on one twice. A bit per message of the conversation.
	Undelivered []Undelivered `json:",omitempty"`
	Handled     Indexes       `json:",omitempty"`
	// Work counts what was recorded for tend to do (a failure reported, the answer named, a party
	// with held messages writing): a tend that finds it changed after its run runs again, so work
	// recorded while another run held the chat is never left for the sweep.
	Work int64 `json:",omitempty"`
	// Settling are the held messages whose copy was being sent when the chat ended: each is looked for
	// by its marker and counted sent again or dropped, once (its sender may have died).
	Settling []Held `json:",omitempty"`
	// Parked, when set, says the chat's recorded work failed through all its runs: the sweep keeps
	// trying, and an operator sees it (the log, the metric optin_chat_work_parked_total).
	Parked *Parked `json:",omitempty"`
	// Release says the chat's numbers are still to be freed: set in the write that makes the chat
	// final, cleared once they are free, retried by the upkeep until then.
	Release bool `json:",omitempty"`
	// Calls are the parties' calls through the chat's numbers, the newest maxCalls.
	Calls []Call `json:",omitempty"`
	// Guarded records the messages the guard changed or blocked (the newest maxGuarded); GuardedCount
	// counts them all. Notices are messages for one party alone still to send (tend), the newest
	// maxNotices; NoticesDropped counts those let go for newer ones, so that each blocked message's
	// notice is sent, refused by Twilio or counted dropped.
	Guarded        []Guarded `json:",omitempty"`
	GuardedCount   int       `json:",omitempty"`
	Notices        []Notice  `json:",omitempty"`
	NoticesDropped int       `json:",omitempty"`
}

// HasWork reports whether the chat holds something the upkeep must finish: an event not delivered,
// a message held, a nudge not known to be sent, numbers not freed.
func (c Chat) HasWork() bool { return len(c.Pending) > 0 || c.Release || c.needsTending() }

// needsTending reports whether the chat holds messages, a nudge not known to be sent, or a move to
// SMS not finished: what tend carries out.
func (c Chat) needsTending() bool {
	return len(c.Customer.Held) > 0 || len(c.Rider.Held) > 0 || c.Customer.Nudging || c.Rider.Nudging || c.Fallback != nil ||
		len(c.Undelivered) > 0 || len(c.Settling) > 0 || len(c.Notices) > 0
}

// Parked is recorded work that failed through all its runs.
type Parked struct {
	At     time.Time
	Reason string
}

// Indexes is a set of message indexes (Twilio numbers a conversation's messages from 0), a bit each:
// 2,000 messages take 250 bytes.
type Indexes []byte

// Has reports whether i is in the set.
func (x Indexes) Has(i int) bool { return i >= 0 && i/8 < len(x) && x[i/8]&(1<<(i%8)) != 0 }

// With returns the set with i added.
func (x Indexes) With(i int) Indexes {
	if i < 0 {
		return x
	}
	if n := i/8 + 1; n > len(x) {
		x = append(x, make([]byte, n-len(x))...)
	}
	x[i/8] |= 1 << (i % 8)
	return x
}

// Event is a transition the platform is told of, kept with its chat until it is delivered.
type Event struct {
	// ID is the webhook-id: stable across retries, so receivers can drop a repeat.
	ID   string
	Type string
	At   time.Time
	// Data is the chat's View at the transition, as JSON.
	Data []byte
}

// Event types: the states a platform hears of.
var eventTypes = map[State]string{
	StateInvited: "chat.invited", StateConnected: "chat.connected", StateDeclined: "chat.declined",
	StateFailed: "chat.failed", StateClosed: "chat.closed",
}

// Notifier makes the delivery of a chat's pending event durable: a queue whose worker sends it.
type Notifier interface {
	Notify(ctx context.Context, chatID, eventID string) error
}

// Errors the Service returns; handlers map them to statuses.
var (
	// ErrNotFound: no chat has this id or conversation SID.
	ErrNotFound = errors.New("chat not found")
	// ErrConflict: the id was used by a start with another body.
	ErrConflict = errors.New("chat id already used with a different request")
	// ErrBusy: the chat's start is running elsewhere or did not finish within the budget; repeat the call.
	ErrBusy = errors.New("chat start not finished; repeat the call")
	// ErrEnded: the chat was ended while its start ran; the start's caller did not get it.
	ErrEnded = errors.New("chat ended during its start")
)

// A failure of the chat store wraps conversation.ErrUnavailable: the caller may repeat the call.

// TwilioError is a permanent Twilio refusal that stopped a chat (or its start).
type TwilioError struct {
	Code   int
	Status int
	Err    error
}

func (e *TwilioError) Error() string {
	return fmt.Sprintf("twilio refused (code %d): %v", e.Code, e.Err)
}
func (e *TwilioError) Unwrap() error { return e.Err }

// NoNumberError says that no business number is free for a party: each of the pool's numbers is
// already paired with the party's address in another active conversation.
type NoNumberError struct {
	// Party is "customer" or "rider".
	Party, Address string
	Err            error
	// TwilioCode is 50416 when Twilio's answer showed it (a pair bound outside the service).
	TwilioCode int
}

func (e *NoNumberError) Error() string { return e.Party + ": " + e.Err.Error() }
func (e *NoNumberError) Unwrap() error { return e.Err }

// Limiter holds Twilio's conversation creates to their rate (per service, across replicas).
type Limiter interface {
	// Wait returns when a create may go, or with an error once ctx ends.
	Wait(ctx context.Context) error
}

// Pool leases the business numbers a chat's parties talk to.
type Pool interface {
	// Lease leases a number per address to the chat, in the same order; an exhausted pool is an error.
	Lease(ctx context.Context, chatID string, addresses []string) ([]string, error)
	// Replace blocks a pair Twilio reported bound elsewhere and leases the address another number.
	Replace(ctx context.Context, chatID, address, number string) (string, error)
	// Release frees the chat's numbers.
	Release(ctx context.Context, chatID string) error
	// ReleaseAddress frees the numbers leased to the chat for one address (a party that left).
	ReleaseAddress(ctx context.Context, chatID, address string) error
	// Renew keeps the chat's numbers leased for another term.
	Renew(ctx context.Context, chatID string) error
	// Contains reports whether number (a whatsapp: or bare +E164 address) is one of the pool's.
	Contains(number string) bool
}

// FieldError names one field of a request and what is wrong with it.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every field at fault in a request.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Store keeps chats. Create must be atomic: of concurrent creates of one id, on any replica, one wins.
// Returned chats never alias stored ones.
type Store interface {
	// Create records c (giving it its Seq) unless a chat with its id exists, which it returns instead.
	Create(ctx context.Context, c Chat) (existing Chat, created bool, err error)
	// Get returns the chat with this id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Chat, error)
	// ByConversation returns the chat of a conversation, or an error wrapping ErrNotFound.
	ByConversation(ctx context.Context, conversationSid string) (Chat, error)
	// Update applies change to the stored chat atomically: change may run more than once, on the
	// latest version, and an error from it aborts the update.
	Update(ctx context.Context, id string, change func(*Chat) error) (Chat, error)
	// Delete forgets a chat (a start refused before anything existed at Twilio).
	Delete(ctx context.Context, id string) error
	// List returns up to limit chats in state (all when empty), newest first, with Seq below before
	// (0: from the newest); next is the Seq to pass for the following page, 0 at the end.
	List(ctx context.Context, state State, limit int, before int64) (chats []Chat, next int64, err error)
	// Lock takes the lease named id (a chat's id: its start and end; "~"-prefixed: a sweep of all
	// chats) for ttl unless another owner holds it; the owner taking it again extends it. Unlock gives
	// it back.
	Lock(ctx context.Context, id, owner string, ttl time.Duration) (bool, error)
	Unlock(ctx context.Context, id, owner string) error
	// Open returns the ids of the chats not in a final state in one shard of shards (ShardOf); with
	// shards 1 or less, all of them. A store that keeps its chats in buckets reads only the shard's.
	Open(ctx context.Context, shard, shards int) ([]string, error)
	// WithPending returns the ids of the chats that have work (Chat.HasWork): events not yet
	// delivered, messages held.
	WithPending(ctx context.Context) ([]string, error)
}

// NewConversation is what a chat's conversation is created with.
type NewConversation struct {
	UniqueName, FriendlyName, Attributes string
	// ClosedAfter is Twilio's Timers.Closed: the conversation closes after this long without activity.
	ClosedAfter time.Duration
}

// Conversations is what a chat needs of Twilio Conversations. Adapters report failed calls as
// *twiliocall.CallError.
type Conversations interface {
	CreateConversation(ctx context.Context, c NewConversation) (sid string, err error)
	// FindConversation returns the SID of the conversation with this SID or unique name and whether it
	// is closed; one that does not exist is a *twiliocall.CallError whose NotFound is true.
	FindConversation(ctx context.Context, uniqueName string) (sid string, closed bool, err error)
	AddParticipant(ctx context.Context, conversationSid, address, proxyAddress string) error
	CreateMessage(ctx context.Context, conversationSid string, m conversation.Message) (sid string, err error)
	RecentMessages(ctx context.Context, conversationSid string, limit int) ([]conversation.PostedMessage, error)
	ScopedWebhooks(ctx context.Context, conversationSid string) ([]conversation.Webhook, error)
	CreateWebhook(ctx context.Context, conversationSid string, h conversation.Webhook) (sid string, err error)
	// CloseConversation sets the conversation's state to closed, which frees its address pairs.
	CloseConversation(ctx context.Context, conversationSid string) error
	// RemoveParticipant removes the messaging participant whose address this is; none counts as removed.
	RemoveParticipant(ctx context.Context, conversationSid, address string) error
	// FetchMessage reads one message of the conversation, with its media.
	FetchMessage(ctx context.Context, conversationSid, messageSid string) (Message, error)
	// CopyMedia copies a message's attachment into a new media of the conversation's service, for a
	// new message to carry (Twilio attaches a media to one message only); it returns the new SID.
	CopyMedia(ctx context.Context, conversationSid string, m Media) (sid string, err error)
	// RecentDeliveries returns up to limit of the conversation's newest messages with whether a
	// delivery of each failed.
	RecentDeliveries(ctx context.Context, conversationSid string, limit int) ([]Delivery, error)
	// FailureCodes returns the error codes of a message's failed deliveries (its receipts).
	FailureCodes(ctx context.Context, conversationSid, messageSid string) ([]int, error)
}

// Delivery is how a message's deliveries went, as a list of messages tells it.
type Delivery struct {
	Sid string
	// Index is the message's index in the conversation.
	Index int
	// Author wrote it and Created is when (Twilio's clock): a party's own message tells that their
	// window opened, should its onMessageAdded have been lost. Ours says that the message was made by
	// the service (a marker in its attributes: a copy, a nudge, a step), in a party's name or not: it
	// tells nothing of their window.
	Author  string
	Created time.Time
	Ours    bool
	// Failed: at least one delivery failed or was undelivered.
	Failed bool
}

// Message is a message of a conversation, as FetchMessage reads it.
type Message struct {
	Sid, Author, Body, Attributes string
	Index                         int
	// Created is Twilio's date_created.
	Created time.Time
	// Media are the message's attachments (a photo of the door), in Twilio's order.
	Media []Media `json:",omitempty"`
}

// Media is one attachment of a message, as Twilio's Media Content Service keeps it (an ME SID).
type Media struct {
	Sid, ContentType, Filename string
	Size                       int64
}
