// Package twiliocall is how the service makes a Twilio REST call safely, for each domain that makes
// them (the opt-in, chats): a failure classified (CallError), retried with backoff (Retry), a create
// made once by a marker looked for before it is repeated (CreateOnce), a close that counts a closed or
// missing conversation as closed (Close). It knows no twilio-go type: adapters report in its terms.
package twiliocall

import (
	"errors"
	"time"
)

// Twilio error codes every domain reads.
const (
	// CodeNotFound: the resource does not exist.
	CodeNotFound = 20404
	// CodeClosed: the conversation is closed and takes no change.
	CodeClosed = 50377
)

// FailureKind tells whether and how a failed call may be retried.
type FailureKind int

const (
	// Permanent: retrying cannot help (most 4xx).
	Permanent FailureKind = iota
	// Retryable: the call certainly had no effect (429, connection refused); retry it.
	Retryable
	// Uncertain: the call may have taken effect (5xx, timeout, connection reset); look before retrying a create.
	Uncertain
)

func (k FailureKind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Uncertain:
		return "uncertain"
	default:
		return "permanent"
	}
}

// CallError is how adapters report a failed call.
type CallError struct {
	Op   string
	Kind FailureKind
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Code is Twilio's error code, 0 when none.
	Code int
	// RetryAfter is the server's requested wait, 0 when it gave none.
	RetryAfter time.Duration
	Err        error
}

func (e *CallError) Error() string {
	msg := e.Op + ": " + e.Kind.String()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *CallError) Unwrap() error { return e.Err }

// NotFound reports whether the call failed because its resource does not exist.
func (e *CallError) NotFound() bool { return e.Status == 404 || e.Code == CodeNotFound }

// Code is Twilio's error code in err's chain, 0 when there is none.
func Code(err error) int {
	if ce, ok := errors.AsType[*CallError](err); ok {
		return ce.Code
	}
	return 0
}

// KindOf is the kind of the failure in err's chain: Uncertain for an error that is no *CallError (an
// adapter that cannot say is not trusted to have failed cleanly).
func KindOf(err error) FailureKind {
	if ce, ok := errors.AsType[*CallError](err); ok {
		return ce.Kind
	}
	return Uncertain
}

// IsNotFound reports whether err's chain holds a call that failed because its resource does not exist.
func IsNotFound(err error) bool {
	ce, ok := errors.AsType[*CallError](err)
	return ok && ce.NotFound()
}

// Permanently reports whether err holds only permanent call failures: nothing a later attempt could fix.
func Permanently(err error) bool {
	if ce, ok := err.(*CallError); ok {
		return ce.Kind == Permanent
	}
	switch x := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			if !Permanently(e) {
				return false
			}
		}
		return true
	case interface{ Unwrap() error }:
		return Permanently(x.Unwrap())
	}
	return false
}
