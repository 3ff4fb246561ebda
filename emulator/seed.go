package emulator

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Seed is a conversation made before a test begins — by a platform, by hand, by another service.
// AddConversation puts it in place as the REST API would have made it, without a request (the log
// of Requests stays as it was) and without firing a webhook.
type Seed struct {
	// Sid is CH + 32 hex digits; empty: a new one.
	Sid                                  string
	UniqueName, FriendlyName, Attributes string
	// State is active (when empty), inactive or closed.
	State string
	// Participants are messaging participants, in the order they joined.
	Participants []Binding
	// Webhooks are conversation-scoped webhooks of target webhook. Unlike the REST API, which refuses
	// a sixth (50361), a seed may hold more than Twilio's five, so that a client's paging through them
	// can be tested.
	Webhooks []SeedWebhook
}

// Binding is a messaging participant's address (whatsapp:+… or +…) and the business number it is
// reached through.
type Binding struct {
	Address, ProxyAddress string
}

// SeedWebhook is a conversation-scoped webhook of a Seed.
type SeedWebhook struct {
	// Sid is WH + 32 hex digits; empty: a new one.
	Sid string
	// URL is absolute http(s); Method is GET or POST (when empty).
	URL, Method string
	Filters     []string
}

var seedSidRE = regexp.MustCompile(`^[A-Z]{2}[0-9a-fA-F]{32}$`)

// AddConversation puts a conversation in place as if made earlier through the REST API, and returns
// it. It refuses what the API refuses — a SID or unique name taken, a webhook URL that is not
// absolute http(s), a binding already in another conversation that is not closed (Twilio's 50416),
// or twice in this one — except the limit of five webhooks.
func (e *Emulator) AddConversation(s Seed) (ConversationView, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	c := &conversation{Sid: s.Sid, UniqueName: s.UniqueName, FriendlyName: s.FriendlyName, Attributes: cmp.Or(s.Attributes, "{}"),
		State: cmp.Or(s.State, "active"), Created: now, Updated: now}
	switch {
	case c.Sid == "":
		c.Sid = e.newSid("CH")
	case !strings.HasPrefix(c.Sid, "CH") || !seedSidRE.MatchString(c.Sid):
		return ConversationView{}, fmt.Errorf("emulator: seed SID %q: want CH and 32 hex digits", c.Sid)
	case e.find(c.Sid) != nil:
		return ConversationView{}, fmt.Errorf("emulator: conversation %s exists", c.Sid)
	}
	if c.UniqueName != "" && e.find(c.UniqueName) != nil {
		return ConversationView{}, fmt.Errorf("emulator: unique name %q is taken (50353)", c.UniqueName)
	}
	if !slices.Contains([]string{"active", "inactive", "closed"}, c.State) {
		return ConversationView{}, fmt.Errorf("emulator: seed state %q: want active, inactive or closed", c.State)
	}
	for _, b := range s.Participants {
		if err := e.seedParticipantLocked(c, b); err != nil {
			return ConversationView{}, err
		}
	}
	for _, sw := range s.Webhooks {
		h, err := e.seedWebhookLocked(c, sw)
		if err != nil {
			return ConversationView{}, err
		}
		h.Created, h.Updated = now, now
		c.webhooks = append(c.webhooks, h)
	}
	e.conversations = append(e.conversations, c)
	return viewOf(c), nil
}

// seedParticipantLocked adds b to c, which may not be in e.conversations yet. Callers hold e.mu.
func (e *Emulator) seedParticipantLocked(c *conversation, b Binding) error {
	switch {
	case b.Address == "" || b.ProxyAddress == "":
		return fmt.Errorf("emulator: seed participant %q through %q: want both", b.Address, b.ProxyAddress)
	case channel(b.Address) != channel(b.ProxyAddress):
		return fmt.Errorf("emulator: seed participant: address and proxy address on different channels")
	}
	for _, other := range append(slices.Clone(e.conversations), c) {
		for _, p := range other.participants {
			if p.Address != b.Address || p.ProxyAddress != b.ProxyAddress {
				continue
			}
			if other == c {
				return fmt.Errorf("emulator: seed participant %s through %s twice (50433)", b.Address, b.ProxyAddress)
			}
			if other.State != "closed" && c.State != "closed" {
				return fmt.Errorf("emulator: seed participant %s through %s is in %s (50416)", b.Address, b.ProxyAddress, other.Sid)
			}
		}
	}
	now := e.now()
	c.participants = append(c.participants, &participant{Sid: e.newSid("MB"), Attributes: "{}", Address: b.Address, ProxyAddress: b.ProxyAddress,
		Created: now, Updated: now})
	return nil
}

// seedWebhookLocked builds a webhook of c, which may not be in e.conversations yet, from sw with the
// checks of the REST API's create. Callers hold e.mu.
func (e *Emulator) seedWebhookLocked(c *conversation, sw SeedWebhook) (*webhook, error) {
	h := &webhook{Sid: sw.Sid, Target: "webhook", Method: "POST"}
	switch {
	case h.Sid == "":
		h.Sid = e.newSid("WH")
	case !strings.HasPrefix(h.Sid, "WH") || !seedSidRE.MatchString(h.Sid):
		return nil, fmt.Errorf("emulator: seed webhook SID %q: want WH and 32 hex digits", h.Sid)
	case e.webhookTakenLocked(c, h.Sid):
		return nil, fmt.Errorf("emulator: webhook %s exists", h.Sid)
	}
	form := url.Values{"Configuration.Url": {sw.URL}, "Configuration.Filters": sw.Filters}
	if sw.Method != "" {
		form.Set("Configuration.Method", sw.Method)
	}
	if err := applyWebhookConfig(h, form); err != nil {
		return nil, fmt.Errorf("emulator: seed webhook %s: %s (%d)", h.Sid, err.Msg, err.Code)
	}
	return h, nil
}

func (e *Emulator) webhookTakenLocked(c *conversation, sid string) bool {
	for _, other := range append(slices.Clone(e.conversations), c) {
		if findBySid(other.webhooks, sid, func(h *webhook) string { return h.Sid }) != nil {
			return true
		}
	}
	return false
}
