package emulator

import (
	"net/http"
	"net/url"
	"strings"
)

// The account's one Conversation Service (its default), the participant conversations lookup, and the
// onParticipantAdded event.

func (e *Emulator) serviceJSON(api string) map[string]any {
	u := api + "/Services/" + e.serviceSid()
	links := map[string]any{}
	for key, path := range map[string]string{
		"conversations": "Conversations", "users": "Users", "roles": "Roles", "bindings": "Bindings",
		"configuration": "Configuration", "participant_conversations": "ParticipantConversations",
		"conversation_with_participants": "ConversationWithParticipants",
	} {
		links[key] = u + "/" + path
	}
	return map[string]any{
		"sid": e.serviceSid(), "account_sid": e.opts.AccountSid, "friendly_name": "Default Conversations Service",
		"date_created": ts(e.started), "date_updated": ts(e.started), "url": u, "links": links,
	}
}

func (e *Emulator) listServices(r *http.Request, api string) (int, any, *apiError) {
	return http.StatusOK, page(r, "services", []string{e.serviceSid()}, 50, 100, func(string) any { return e.serviceJSON(api) }), nil
}

func (e *Emulator) fetchService(_ *http.Request, api string) (int, any, *apiError) {
	return http.StatusOK, e.serviceJSON(api), nil
}

// participantConversation is one conversation a participant is in, as the lookup lists it.
type participantConversation struct {
	c *conversation
	p *participant
}

// listParticipantConversations lists the conversations of a participant found by its binding's
// address or its identity, oldest conversation first, closed ones included.
func (e *Emulator) listParticipantConversations(r *http.Request, api string) (int, any, *apiError) {
	q := r.URL.Query()
	address, identity := q.Get("Address"), q.Get("Identity")
	if address == "" && identity == "" {
		bad := badParam("Address or Identity is required")
		return 0, nil, &bad
	}
	var found []participantConversation
	for _, c := range e.conversations {
		for _, p := range c.participants {
			if (address != "" && p.Address == address) || (identity != "" && p.Identity == identity) {
				found = append(found, participantConversation{c, p})
			}
		}
	}
	// The links lead to the resources under the same root as the request.
	return http.StatusOK, page(r, "conversations", found, 50, 50, func(pc participantConversation) any {
		u := api + "/Conversations/" + pc.c.Sid
		return map[string]any{
			"account_sid": e.opts.AccountSid, "chat_service_sid": e.serviceSid(),
			"participant_sid": pc.p.Sid, "participant_user_sid": nil, "participant_identity": nullable(pc.p.Identity),
			"participant_messaging_binding": bindingJSON(pc.p),
			"conversation_sid":              pc.c.Sid, "conversation_unique_name": nullable(pc.c.UniqueName),
			"conversation_friendly_name": nullable(pc.c.FriendlyName), "conversation_attributes": pc.c.Attributes,
			"conversation_date_created": ts(pc.c.Created), "conversation_date_updated": ts(pc.c.Updated),
			"conversation_created_by": "system", "conversation_state": pc.c.State, "conversation_timers": timers(pc.c),
			"links": map[string]any{"participant": u + "/Participants/" + pc.p.Sid, "conversation": u},
		}
	}), nil
}

// bindingType is MessagingBinding.Type in participant events: SMS, WHATSAPP or CHAT.
func bindingType(p *participant) string {
	if p.Address == "" {
		return "CHAT"
	}
	return strings.ToUpper(channel(p.Address))
}

// fireParticipantAddedLocked sends onParticipantAdded, with the parameters Twilio documents, to each
// of the conversation's webhooks that asks for it. Callers hold e.mu.
func (e *Emulator) fireParticipantAddedLocked(c *conversation, p *participant) {
	for _, h := range c.webhooks {
		if h.Target != "webhook" || !hasFilter(h.Filters, "onParticipantAdded") {
			continue
		}
		params := url.Values{
			"AccountSid":            {e.opts.AccountSid},
			"ChatServiceSid":        {e.serviceSid()},
			"ConversationSid":       {c.Sid},
			"EventType":             {"onParticipantAdded"},
			"ParticipantSid":        {p.Sid},
			"DateCreated":           {p.Created.Format("2006-01-02T15:04:05.000Z")},
			"RoleSid":               {e.roleSid()},
			"Attributes":            {p.Attributes},
			"MessagingBinding.Type": {bindingType(p)},
			"Source":                {"API"},
			"RetryCount":            {"0"},
			"WebhookSid":            {h.Sid},
			"WebhookType":           {"webhook"},
		}
		for name, v := range map[string]string{"Identity": p.Identity, "MessagingBinding.Address": p.Address,
			"MessagingBinding.ProxyAddress": p.ProxyAddress, "MessagingBinding.ProjectedAddress": p.ProjectedAddress} {
			if v != "" {
				params.Set(name, v)
			}
		}
		if c.MessagingServiceSid != "" {
			params.Set("MessagingServiceSid", c.MessagingServiceSid)
		}
		e.deliverLocked(h, "onParticipantAdded", "", params)
	}
}
