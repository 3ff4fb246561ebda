// Package optin is the two-sided WhatsApp opt-in of a Twilio conversation: it decides what an inbound
// event means and performs the opt-in steps exactly once, through the small ports it declares here.
//
// It knows nothing of HTTP or twilio-go: adapters implement Conversations and Store.
package optin

import (
	"context"
	"errors"
	"time"

	"github.com/optinkit/optin/internal/conversation"
)

// Reasons an event is ignored.
const (
	ReasonEventType   = "event_type"
	ReasonNoAuthor    = "system_author"
	ReasonNotCustomer = "not_customer"
	ReasonInProgress  = "flow_running"
	ReasonCompleted   = "flow_done"
	ReasonFailed      = "flow_failed"
	// ReasonNotYet: a chat's rider wrote before the customer answered.
	ReasonNotYet = "customer_not_answered"
)

// State is where a conversation's opt-in stands.
type State string

const (
	StateRunning State = "running"
	StateDone    State = "done"
	StateFailed  State = "failed"
)

// Flow is the record of one conversation's opt-in.
type Flow struct {
	ConversationSid string
	// Customer is the address whose reply opted the conversation in; the rider's template is authored by it.
	Customer string
	// Trigger is the MessageSid of the customer's reply.
	Trigger    string
	State      State
	Detail     string
	StartedAt  time.Time
	FinishedAt time.Time
	// Steps maps each completed step to what it left behind (a message SID, or "done").
	Steps map[string]string
	// Runs counts the times the work was started; more than one means an earlier run may have been cut off.
	Runs int
	// Answer is what the customer's reply said; it decides the steps.
	Answer Answer
	// Chat is set for a conversation started through the chats API.
	Chat bool
}

// ErrNoFlow marks an operation on a conversation that has no flow (never claimed, or forgotten after
// the retention).
var ErrNoFlow = errors.New("no flow for this conversation")

// Store keeps one Flow per conversation. Implementations must make Claim atomic: of many concurrent
// claims for one conversation, on any number of replicas, exactly one wins. Flows returned never alias
// what the store keeps, and strings kept never alias the caller's (a webhook body, say).
type Store interface {
	// Claim records f, with no steps and no runs, unless the conversation already has a flow. claimed
	// reports whether f was recorded; when it was not, existing is the flow already there. (On a win
	// existing is unspecified: callers use f.)
	Claim(ctx context.Context, f Flow) (existing Flow, claimed bool, err error)
	// Flow returns the conversation's flow, or an error wrapping ErrNoFlow.
	Flow(ctx context.Context, conversationSid string) (Flow, error)
	// Begin counts a run of the flow's work and returns the flow as stored, Runs included.
	Begin(ctx context.Context, conversationSid string) (Flow, error)
	// StepsDone records steps of a running flow that completed, each with what it left behind; with
	// no steps it does nothing.
	StepsDone(ctx context.Context, conversationSid string, steps map[string]string) error
	// Finish records the final state of a claimed flow; a flow finished already stays as it was.
	Finish(ctx context.Context, conversationSid string, state State, detail string) error
	// Sync returns once every write made before it is as durable as the store is configured to make
	// it — held by replicas that a failover would promote — or with an error.
	Sync(ctx context.Context) error
}

// Queue makes a conversation's work durable and gets it done by some worker. When Enqueue returns nil
// the work will run even if this process dies; enqueuing work already queued or running does nothing.
type Queue interface {
	Enqueue(ctx context.Context, conversationSid string) error
}

// Worker is what a Queue runs: *Service. Work returns nil once the flow is finished; GiveUp records a
// flow as failed when the queue stops retrying it.
type Worker interface {
	Work(ctx context.Context, conversationSid string) error
	GiveUp(ctx context.Context, conversationSid string, cause error) error
}

// Chats tells the flow about conversations started through the chats API; a conversation armed by hand
// has no chat, and its customer is whoever writes first (the guide's rule).
type Chats interface {
	// Parties returns the customer's and the rider's address of the conversation's chat; ok is false
	// when the conversation has none.
	Parties(ctx context.Context, conversationSid string) (customer, rider string, ok bool, err error)
	// Advance records that the conversation's chat reached stage; answer is the customer's message
	// that answered the invitation; cause, for StageFailed, says why (a *CallError in its chain
	// carries Twilio's code).
	Advance(ctx context.Context, conversationSid string, stage conversation.Stage, answer string, cause error) error
}

// Observer is told what the flow does, for metrics. Config.Observer may be nil.
type Observer interface {
	StepFinished(step, outcome string, d time.Duration)
	FlowFinished(state State)
	Retry(operation string)
}

type noObserver struct{}

func (noObserver) StepFinished(string, string, time.Duration) {}
func (noObserver) FlowFinished(State)                         {}
func (noObserver) Retry(string)                               {}

// Conversations is what the flow needs of Twilio Conversations. Adapters report failed calls as
// *twiliocall.CallError.
type Conversations interface {
	CreateMessage(ctx context.Context, conversationSid string, m conversation.Message) (sid string, err error)
	// RecentMessages returns up to limit of the conversation's newest messages.
	RecentMessages(ctx context.Context, conversationSid string, limit int) ([]conversation.PostedMessage, error)
	// ScopedWebhooks returns every conversation-scoped webhook, across all pages.
	ScopedWebhooks(ctx context.Context, conversationSid string) ([]conversation.Webhook, error)
	DeleteWebhook(ctx context.Context, conversationSid, webhookSid string) error
	// CloseConversation sets the conversation's state to closed, which frees its address pairs.
	CloseConversation(ctx context.Context, conversationSid string) error
}
