package emulator

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
)

// The pre-event hook onMessageAdd: for a message from a phone (never one written through the REST
// API), Twilio asks the service's (else the account's) pre-event URL before the message exists, and
// its answer publishes it as written, publishes it changed, or drops it.

// preVerdict is what a pre-event answer decided: drop, or the fields it changed (nil: unchanged).
type preVerdict struct {
	drop                     bool
	body, author, attributes *string
}

// preEventParams are onMessageAdd's parameters for a message from participant p. Callers hold e.mu.
func (e *Emulator) preEventParams(c *conversation, p *participant, body string, attached []*media) url.Values {
	params := url.Values{
		"AccountSid":                    {e.opts.AccountSid},
		"ChatServiceSid":                {e.serviceSid()},
		"ConversationSid":               {c.Sid},
		"EventType":                     {"onMessageAdd"},
		"Author":                        {p.Address},
		"Body":                          {body},
		"Attributes":                    {"{}"},
		"ParticipantSid":                {p.Sid},
		"Source":                        {strings.ToUpper(channel(p.Address))},
		"MessagingBinding.Address":      {p.Address},
		"MessagingBinding.ProxyAddress": {p.ProxyAddress},
		"RetryCount":                    {"0"},
	}
	if len(attached) > 0 {
		params.Set("Media", mediaParam(attached))
	}
	if c.MessagingServiceSid != "" {
		params.Set("MessagingServiceSid", c.MessagingServiceSid)
	}
	return params
}

// preEvent asks the pre-event hook and reads its answer: a 4xx or 5xx drops the message; a 2xx with
// a JSON object changes its body, author or attributes (an empty body or {} changes nothing);
// anything else (no answer within Options.WebhookTimeout, a body that is not a JSON object)
// publishes it unchanged.
func (e *Emulator) preEvent(target, method string, params url.Values) preVerdict {
	a := e.request(target, method, params, randomToken())
	call := WebhookCall{Method: strings.ToUpper(method), URL: a.URL, EventType: "onMessageAdd", Status: a.Status, Error: a.Err}
	var v preVerdict
	switch {
	case a.Err != "":
	case a.Status >= 400:
		v.drop = true
	case a.Status >= 200 && a.Status < 300 && len(bytes.TrimSpace(a.Body)) > 0:
		var answer map[string]json.RawMessage
		if err := json.Unmarshal(a.Body, &answer); err != nil {
			call.Error = "the answer is not a JSON object; published unchanged"
			break
		}
		v.body, v.author = jsonString(answer["body"]), jsonString(answer["author"])
		if raw, ok := answer["attributes"]; ok {
			// Attributes come as a string of JSON, as the message resource holds them, or as an object.
			if s := jsonString(raw); s != nil {
				v.attributes = s
			} else if json.Valid(raw) && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
				s := string(raw)
				v.attributes = &s
			}
		}
	}
	e.mu.Lock()
	e.calls = append(e.calls, call)
	e.mu.Unlock()
	return v
}

func jsonString(raw json.RawMessage) *string {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return &s
}
