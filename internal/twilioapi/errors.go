package twilioapi

import (
	"errors"
	"net"

	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/twiliocall"
	"github.com/twilio/twilio-go/client"
)

// Twilio error codes with meaning for the flow.
const (
	codeNotFound        = 20404
	codeTooManyRequests = 20429
)

// classify turns a twilio-go or transport error into an *twiliocall.CallError.
func classify(op string, err error, rec *call) *twiliocall.CallError {
	// Twilio's messages may quote a participant's number: masked here, before any log or detail sees it.
	ce := &twiliocall.CallError{Op: op, Err: pii.RedactError(err), Status: rec.status, RetryAfter: rec.retryAfter}
	var rest *client.TwilioRestError
	if errors.As(err, &rest) {
		ce.Code = rest.Code
		if rest.Status != 0 {
			ce.Status = rest.Status
		}
	}
	ce.Kind = kindOf(ce, err)
	return ce
}

func kindOf(ce *twiliocall.CallError, err error) twiliocall.FailureKind {
	switch {
	case ce.Status == 429 || ce.Code == codeTooManyRequests:
		return twiliocall.Retryable
	case ce.Status == 502 || ce.Status == 504:
		// A gateway answered for Twilio: whether Twilio acted is unknown.
		return twiliocall.Uncertain
	case ce.Status >= 500:
		// Twilio itself answered with an error: the request failed, it may be sent again.
		return twiliocall.Retryable
	case ce.Status >= 400:
		return twiliocall.Permanent
	case ce.Status != 0:
		// A 2xx whose body could not be read: the call took effect, its answer was lost.
		return twiliocall.Uncertain
	}
	// No response. A failed dial never reached Twilio; timeouts, resets and EOF may have been acted on.
	if isDialError(err) {
		return twiliocall.Retryable
	}
	return twiliocall.Uncertain
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
