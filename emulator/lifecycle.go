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
	minClosedTimer    = 10 * time.Minute
	minInactiveTimer  = time.Minute
	codeInactiveShort = 50375 // Timers.Inactive under a minute
	codeTimerShort    = 50376 // Timers.Closed under 10 minutes
	codeClosed        = 50377 // the conversation is closed
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

// setTimers reads Timers.Inactive and Timers.Closed from a create or update form: a create takes them
// without State too, as Twilio's spec says nothing against it. Callers hold e.mu.
func (e *Emulator) setTimers(c *conversation, f url.Values) *apiError {
	for _, t := range []struct {
		name string
		min  time.Duration
		code int
		msg  string
		dst  *time.Duration
	}{
		{"Timers.Inactive", minInactiveTimer, codeInactiveShort, "Timers.Inactive must be at least 1 minute", &c.inactiveAfter},
		{"Timers.Closed", minClosedTimer, codeTimerShort, "Timers.Closed must be at least 10 minutes", &c.closedAfter},
	} {
		raw := f.Get(t.name)
		if raw == "" {
			continue
		}
		d, ok := parseISODuration(raw)
		switch {
		case !ok:
			err := badParam(t.name + " must be an ISO 8601 duration")
			return &err
		case d < t.min:
			return &apiError{400, t.code, t.msg}
		}
		*t.dst = d
	}
	return nil
}

// expireLocked moves every conversation whose timer ran out: active to inactive (Timers.Inactive),
// then to closed (Timers.Closed). Twilio's timers count time without activity. Callers hold e.mu.
func (e *Emulator) expireLocked() {
	now := e.now()
	for _, c := range e.conversations {
		if c.State == "active" && c.inactiveAfter > 0 && !now.Before(c.Updated.Add(c.inactiveAfter)) {
			idle := c.Updated
			e.setStateLocked(c, "inactive", "TIMER")
			c.Updated = idle // going inactive is no activity: the closed timer keeps counting
		}
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
		params := url.Values{
			"AccountSid":      {e.opts.AccountSid},
			"ChatServiceSid":  {e.serviceSid()},
			"ConversationSid": {c.Sid},
			"EventType":       {"onConversationStateUpdated"},
			"StateFrom":       {from},
			"StateTo":         {to},
			"Reason":          {reason},
			"StateUpdated":    {c.Updated.Format("2006-01-02T15:04:05.000Z")},
			"RetryCount":      {"0"},
			"WebhookSid":      {h.Sid},
			"WebhookType":     {"webhook"},
		}
		if c.MessagingServiceSid != "" {
			params.Set("MessagingServiceSid", c.MessagingServiceSid)
		}
		e.deliverLocked(h, "onConversationStateUpdated", "", params)
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
