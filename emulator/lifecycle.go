package emulator

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Twilio's bounds on Timers.Closed and the codes it answers.
const (
	minClosedTimer = 10 * time.Minute
	codeTimerState = 50382 // a timer on create needs State
	codeTimerShort = 50376 // Timers.Closed under 10 minutes
	codeClosed     = 50377 // the conversation is closed
)

var isoDurationRE = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

// parseISODuration reads the ISO 8601 durations Twilio's timers take: P1D, PT2H30M, PT600S.
func parseISODuration(s string) (time.Duration, bool) {
	m := isoDurationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || s == "PT" {
		return 0, false
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] != "" {
			n, err := strconv.Atoi(m[i+1])
			if err != nil {
				return 0, false
			}
			d += time.Duration(n) * unit
		}
	}
	return d, true
}

// setClosedTimer reads Timers.Closed from a create or update form. Callers hold e.mu.
func (e *Emulator) setClosedTimer(c *conversation, f url.Values, creating bool) *apiError {
	raw := f.Get("Timers.Closed")
	if raw == "" {
		return nil
	}
	if creating && f.Get("State") == "" {
		return &apiError{400, codeTimerState, "A timer on create needs the State parameter"}
	}
	d, ok := parseISODuration(raw)
	switch {
	case !ok:
		err := badParam("Timers.Closed must be an ISO 8601 duration")
		return &err
	case d < minClosedTimer:
		return &apiError{400, codeTimerShort, "Timers.Closed must be at least 10 minutes"}
	}
	c.closedAfter = d
	return nil
}

// expireLocked closes every conversation whose closed timer ran out: Twilio's timers count time
// without activity. Callers hold e.mu.
func (e *Emulator) expireLocked() {
	now := e.now()
	for _, c := range e.conversations {
		if c.State != "closed" && c.closedAfter > 0 && !now.Before(c.Updated.Add(c.closedAfter)) {
			e.setStateLocked(c, "closed", "TIMER")
		}
	}
}

// setStateLocked changes a conversation's state and tells the webhooks that ask. Callers hold e.mu.
func (e *Emulator) setStateLocked(c *conversation, to, reason string) {
	from := c.State
	if from == to {
		return
	}
	c.State, c.Updated = to, e.now()
	for _, h := range c.webhooks {
		if h.Target != "webhook" || !hasFilter(h.Filters, "onConversationStateUpdated") {
			continue
		}
		e.deliverLocked(h, "onConversationStateUpdated", "", url.Values{
			"AccountSid":      {e.opts.AccountSid},
			"ChatServiceSid":  {"IS" + c.Sid[2:]},
			"ConversationSid": {c.Sid},
			"EventType":       {"onConversationStateUpdated"},
			"StateFrom":       {from},
			"StateTo":         {to},
			"Reason":          {reason},
			"DateUpdated":     {c.Updated.Format("2006-01-02T15:04:05.000Z")},
			"RetryCount":      {"0"},
			"WebhookSid":      {h.Sid},
			"WebhookType":     {"webhook"},
		})
	}
}

// CloseConversation closes a conversation as Twilio would for reason (TIMER, API), telling the webhooks
// that ask — if it still has any.
func (e *Emulator) CloseConversation(sid, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(sid)
	if c == nil {
		return fmt.Errorf("no conversation %s", sid)
	}
	e.setStateLocked(c, "closed", reason)
	return nil
}

// RemoveWebhook removes one of a conversation's scoped webhooks, as a DELETE through the REST API
// would: a test uses it to make a report never arrive.
func (e *Emulator) RemoveWebhook(conv, webhookSid string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(conv)
	if c == nil {
		return fmt.Errorf("no conversation %s", conv)
	}
	n := len(c.webhooks)
	c.webhooks = slices.DeleteFunc(c.webhooks, func(h *webhook) bool { return h.Sid == webhookSid })
	if len(c.webhooks) == n {
		return fmt.Errorf("no webhook %s in %s", webhookSid, conv)
	}
	return nil
}
