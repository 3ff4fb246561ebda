// Package conversation is the shared kernel of the service's domains (the opt-in, chats): what a
// Twilio conversation's webhook tells them (Event), what they write into one (Message, Webhook), the
// answer to an event (Decision), the opt-in stages a chat is told of, and the one error that says the
// service's own state failed. It knows no HTTP, Redis or twilio-go type.
package conversation

import (
	"errors"
	"fmt"
	"time"

	"github.com/optinkit/optin/internal/twiliocall"
)

// EventMessageAdded tells what a participant wrote: the opt-in starts from it and chats relay it.
const EventMessageAdded = "onMessageAdded"

// EventStateUpdated tells that a conversation's state changed (a chat's lifecycle webhook asks for it).
const EventStateUpdated = "onConversationStateUpdated"

// EventDeliveryUpdated tells a message's delivery to one participant (a chat's lifecycle webhook asks
// for it).
const EventDeliveryUpdated = "onDeliveryUpdated"

// Event is one Conversations webhook delivery, reduced to what the domains read.
type Event struct {
	Type            string
	ConversationSid string
	MessageSid      string
	Author          string
	Body            string
	ParticipantSid  string
	// RetryCount is Twilio's own redelivery counter, kept for the logs.
	RetryCount string
	// StateTo and StateReason (API, TIMER or EVENT) come with onConversationStateUpdated.
	StateTo, StateReason string
	// DateCreated is when Twilio created the message (onMessageAdded), in Twilio's clock; zero when
	// absent or malformed.
	DateCreated time.Time
	// Status and ErrorCode come with onDeliveryUpdated: the delivery's status (sent, delivered, read,
	// failed, undelivered) to ParticipantSid, and Twilio's error code when it failed.
	Status    string
	ErrorCode int
}

// ErrInvalidEvent marks an event that cannot be acted on because a field it needs is missing or malformed.
var ErrInvalidEvent = errors.New("invalid event")

// Validate reports what an onMessageAdded event lacks. Its SIDs end up in REST paths and store keys, so
// they must have Twilio's shape: two letters and 32 hexadecimal digits. Other event types need nothing.
func (e Event) Validate() error {
	if (e.Type == EventStateUpdated || e.Type == EventDeliveryUpdated) && !IsSid("CH", e.ConversationSid) {
		return fmt.Errorf("%w: ConversationSid is not CH followed by 32 hexadecimal digits", ErrInvalidEvent)
	}
	if e.Type == EventDeliveryUpdated && !IsSid("IM", e.MessageSid) {
		return fmt.Errorf("%w: MessageSid is not IM followed by 32 hexadecimal digits", ErrInvalidEvent)
	}
	if e.Type != EventMessageAdded {
		return nil
	}
	switch {
	case e.ConversationSid == "":
		return fmt.Errorf("%w: ConversationSid is missing", ErrInvalidEvent)
	case !IsSid("CH", e.ConversationSid):
		return fmt.Errorf("%w: ConversationSid is not CH followed by 32 hexadecimal digits", ErrInvalidEvent)
	case e.MessageSid == "":
		return fmt.Errorf("%w: MessageSid is missing", ErrInvalidEvent)
	case !IsSid("IM", e.MessageSid):
		return fmt.Errorf("%w: MessageSid is not IM followed by 32 hexadecimal digits", ErrInvalidEvent)
	}
	return nil
}

// IsSid reports whether s is a Twilio SID of the given two-letter prefix: the prefix and 32 hex digits.
func IsSid(prefix, s string) bool {
	if len(s) != 34 || s[:2] != prefix {
		return false
	}
	for _, c := range []byte(s[2:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Outcome says what the service did with an event.
type Outcome string

const (
	// OutcomeAccepted: the event started the conversation's opt-in.
	OutcomeAccepted Outcome = "accepted"
	// OutcomeDuplicate: a repeated delivery of the message that started the opt-in.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeIgnored: nothing to do; Decision.Reason says why.
	OutcomeIgnored Outcome = "ignored"
	// OutcomeRelayed: a message or delivery of a connected chat, taken by the chat.
	OutcomeRelayed Outcome = "relayed"
)

// Decision is the answer to one event.
type Decision struct {
	Outcome Outcome
	Reason  string
}

// Stage is a point of a chat's opt-in that the chat is told of.
type Stage string

const (
	StageConnecting Stage = "connecting"
	StageConnected  Stage = "connected"
	StageDeclined   Stage = "declined"
	StageOptedOut   Stage = "opted_out"
	StageFailed     Stage = "failed"
)

// ErrUnavailable marks a failure of the service's own state (store or queue), in every domain: the
// event or request was not taken and may be repeated. Adapters answer it alike (HTTP 503 with
// Retry-After, a webhook Twilio redelivers, a queue task retried).
var ErrUnavailable = errors.New("temporarily unavailable")

// Message is a message the service creates (a step of the opt-in, a copy of a held message, a
// notice). Author empty means a system message.
type Message struct {
	Author           string
	Body             string
	ContentSid       string
	ContentVariables string
	Attributes       string
	// MediaSid attaches media uploaded for this message (Twilio takes one per message, and a media
	// SID only once: a copy of a message with media gets a copy of the media, see chat's CopyMedia).
	MediaSid string
}

// PostedMessage is a message already in a conversation, as a search for a step's marker sees it.
type PostedMessage = twiliocall.Posted

// Webhook is a conversation-scoped webhook.
type Webhook struct {
	Sid, URL, Method string
	Filters          []string
}
