package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiError is a Twilio error response.
type apiError struct {
	Status int
	Code   int
	Msg    string
}

func writeAPIError(w http.ResponseWriter, err apiError) {
	writeJSON(w, err.Status, map[string]any{
		"code": err.Code, "message": err.Msg, "status": err.Status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", err.Code),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var (
	errNotFound = apiError{404, 20404, "The requested resource was not found"}
	errAuth     = apiError{401, 20003, "Authenticate"}
)

func badParam(msg string) apiError { return apiError{400, 20001, msg} }

// restHandler handles one REST operation with the emulator locked; it returns the status and body.
// api is the root the request came through, for the URLs in the answer: scheme://host/v1, or
// scheme://host/v1/Services/{ChatServiceSid} for the service-scoped routes.
type restHandler func(r *http.Request, api string) (int, any, *apiError)

func (e *Emulator) routes() {
	m := http.NewServeMux()
	rest := func(pattern, route string, h restHandler) {
		m.Handle(pattern, e.rest(route, h))
	}
	// conv registers a Conversations route twice, as Twilio serves it: for the default Conversation
	// Service (/v1/Conversations…) and under its SID (/v1/Services/{ChatServiceSid}/Conversations…).
	conv := func(method, path, route string, h restHandler) {
		rest(method+" /v1"+path, route, h)
		rest(method+" /v1/Services/{svc}"+path, route, h)
	}
	conv("POST", "/Conversations", "conversations.create", e.createConversation)
	conv("GET", "/Conversations", "conversations.list", e.listConversations)
	conv("GET", "/Conversations/{sid}", "conversations.fetch", e.fetchConversation)
	conv("POST", "/Conversations/{sid}", "conversations.update", e.updateConversation)
	conv("DELETE", "/Conversations/{sid}", "conversations.delete", e.deleteConversation)
	conv("POST", "/Conversations/{conv}/Participants", "participants.create", e.createParticipant)
	conv("GET", "/Conversations/{conv}/Participants", "participants.list", e.listParticipants)
	conv("GET", "/Conversations/{conv}/Participants/{sid}", "participants.fetch", e.fetchParticipant)
	conv("DELETE", "/Conversations/{conv}/Participants/{sid}", "participants.delete", e.deleteParticipant)
	conv("POST", "/Conversations/{conv}/Messages", "messages.create", e.createMessage)
	conv("GET", "/Conversations/{conv}/Messages", "messages.list", e.listMessages)
	conv("GET", "/Conversations/{conv}/Messages/{sid}", "messages.fetch", e.fetchMessage)
	conv("GET", "/Conversations/{conv}/Messages/{msg}/Receipts", "receipts.list", e.listReceipts)
	conv("GET", "/Conversations/{conv}/Messages/{msg}/Receipts/{sid}", "receipts.fetch", e.fetchReceipt)
	conv("POST", "/Conversations/{conv}/Webhooks", "webhooks.create", e.createWebhook)
	conv("GET", "/Conversations/{conv}/Webhooks", "webhooks.list", e.listWebhooks)
	conv("GET", "/Conversations/{conv}/Webhooks/{sid}", "webhooks.fetch", e.fetchWebhook)
	conv("POST", "/Conversations/{conv}/Webhooks/{sid}", "webhooks.update", e.updateWebhook)
	conv("DELETE", "/Conversations/{conv}/Webhooks/{sid}", "webhooks.delete", e.deleteWebhook)
	conv("GET", "/ParticipantConversations", "participant_conversations.list", e.listParticipantConversations)
	rest("GET /v1/Configuration/Webhooks", "configuration_webhooks.fetch", e.fetchAccountHooks)
	rest("POST /v1/Configuration/Webhooks", "configuration_webhooks.update", e.updateAccountHooks)
	rest("GET /v1/Services/{svc}/Configuration/Webhooks", "service_webhooks.fetch", e.fetchServiceHooks)
	rest("POST /v1/Services/{svc}/Configuration/Webhooks", "service_webhooks.update", e.updateServiceHooks)
	// The account's phone numbers, of the 2010 API (api.twilio.com at Twilio).
	numbers := "/2010-04-01/Accounts/{acc}/IncomingPhoneNumbers"
	rest("GET "+numbers+".json", "incoming_phone_numbers.list", e.listNumbers)
	rest("GET "+numbers+"/{file}", "incoming_phone_numbers.fetch", e.fetchNumber)
	rest("POST "+numbers+"/{file}", "incoming_phone_numbers.update", e.updateNumber)
	rest("GET /v1/Services", "services.list", e.listServices)
	rest("GET /v1/Services/{svc}", "services.fetch", e.fetchService)
	// The Media Content Service (mcs.us1.twilio.com at Twilio).
	m.Handle("POST /v1/Services/{svc}/Media", e.bufferBody(maxMediaUpload, e.rest("media.create", e.createMedia)))
	rest("GET /v1/Services/{svc}/Media/{sid}", "media.fetch", e.fetchMedia)
	rest("GET /v1/Services/{svc}/Media/{sid}/Content", "media.content", e.mediaContent)
	m.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		// A path the API has, asked with a method it does not take: 405 naming those it does.
		var allowed []string
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = method
			if _, pattern := m.Handler(probe); pattern != "/v1/" {
				allowed = append(allowed, method)
			}
		}
		if len(allowed) == 0 {
			writeAPIError(w, errNotFound)
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeAPIError(w, apiError{http.StatusMethodNotAllowed, 20004, "Method not allowed: " + r.Method + " (allowed: " + strings.Join(allowed, ", ") + ")"})
	})

	m.HandleFunc("POST /emulator/inbound", e.handleInbound)
	m.HandleFunc("GET /emulator/transcripts", e.handleTranscripts)
	m.HandleFunc("GET /emulator/media/{sid}/{token}", e.handleTemporaryMedia)
	m.HandleFunc("GET /emulator/webhook-calls", e.handleWebhookCalls)
	m.HandleFunc("GET /emulator/requests", e.handleRequests)
	m.HandleFunc("DELETE /emulator/requests", e.handleClearRequests)
	m.HandleFunc("GET /emulator/faults", e.handleGetFaults)
	m.HandleFunc("POST /emulator/faults", e.handleSetFaults)
	m.HandleFunc("DELETE /emulator/faults", e.handleClearFaults)
	m.HandleFunc("POST /emulator/clock", e.handleClock)
	m.HandleFunc("POST /emulator/calls", e.handlePlaceCall)
	m.HandleFunc("GET /emulator/calls", e.handleCalls)
	m.HandleFunc("GET /emulator/calls/{sid}", e.handleCall)
	m.HandleFunc("POST /emulator/calls/{sid}/hangup", e.handleHangup)
	m.HandleFunc("POST /emulator/calls/{sid}/replay-action", e.handleReplayAction)
	m.HandleFunc("POST /emulator/phones/{number}", e.handleSetPhone)
	m.HandleFunc("GET /emulator/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	e.mux = m
}

// rest wraps an operation with authentication, form parsing, fault injection and the lock.
func (e *Emulator) rest(route string, h restHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
			writeAPIError(w, errAuth)
			return
		}
		api := baseURL(r) + "/v1"
		if svc := r.PathValue("svc"); svc != "" {
			if svc != e.serviceSid() { // only the account's default Conversation Service exists
				writeAPIError(w, errNotFound)
				return
			}
			if route != "services.fetch" && !strings.HasPrefix(route, "media.") {
				api += "/Services/" + svc
			}
		}
		if err := r.ParseForm(); err != nil {
			writeAPIError(w, badParam("malformed request"))
			return
		}
		e.mu.Lock()
		e.restCalls++
		e.mu.Unlock()
		f := e.pickFault(route)
		var status int
		var body any
		var apiErr *apiError
		handle := func() {
			e.mu.Lock()
			e.expireLocked()
			status, body, apiErr = h(r, api)
			e.mu.Unlock()
		}
		if f != nil && f.Applied {
			// The call takes effect, then the answer is late or lost: the client cannot tell.
			handle()
		}
		if f != nil && f.Latency > 0 {
			select {
			case <-time.After(time.Duration(f.Latency)):
			case <-r.Context().Done():
				return
			}
		}
		if f != nil && f.Kind != "" {
			f.fail(w)
			return
		}
		if f == nil || !f.Applied {
			handle()
		}
		switch {
		case apiErr != nil:
			writeAPIError(w, *apiErr)
		case body == nil:
			w.WriteHeader(status)
		case isRaw(body):
			writeRaw(w, status, body.(rawBody))
		default:
			writeJSON(w, status, body)
		}
	})
}

func (e *Emulator) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	o := e.opts
	return (u == o.AccountSid && p == o.AuthToken) || (o.APIKey != "" && u == o.APIKey && p == o.APISecret)
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// page cuts items into Twilio's list page: PageSize capped at max, Page counted from 0, absolute URLs.
func page[T any](r *http.Request, key string, items []T, def, maxSize int, render func(T) any) map[string]any {
	q := r.URL.Query()
	size, err := strconv.Atoi(q.Get("PageSize"))
	if err != nil || size <= 0 {
		size = def
	}
	size = min(size, maxSize)
	n, _ := strconv.Atoi(q.Get("Page"))
	n = max(n, 0)
	start := min(n*size, len(items))
	end := min(start+size, len(items))
	out := make([]any, 0, end-start)
	for _, it := range items[start:end] {
		out = append(out, render(it))
	}
	link := func(p int) string {
		v := url.Values{"PageSize": {strconv.Itoa(size)}, "Page": {strconv.Itoa(p)}}
		for _, k := range []string{"Order", "State", "StartDate", "EndDate", "Address", "Identity"} {
			if x := q.Get(k); x != "" {
				v.Set(k, x)
			}
		}
		if p > 0 {
			v.Set("PageToken", "PT"+strconv.Itoa(p))
		}
		return baseURL(r) + r.URL.Path + "?" + v.Encode()
	}
	meta := map[string]any{
		"page": n, "page_size": size, "key": key,
		"first_page_url": link(0), "url": link(n),
		"previous_page_url": nil, "next_page_url": nil,
	}
	if n > 0 {
		meta["previous_page_url"] = link(n - 1)
	}
	if end < len(items) {
		meta["next_page_url"] = link(n + 1)
	}
	return map[string]any{key: out, "meta": meta}
}

// ---- Conversations

func (e *Emulator) conversationJSON(api string, c *conversation) map[string]any {
	u := api + "/Conversations/" + c.Sid
	return map[string]any{
		"sid": c.Sid, "account_sid": e.opts.AccountSid, "chat_service_sid": e.serviceSid(),
		"messaging_service_sid": nullable(c.MessagingServiceSid), "friendly_name": nullable(c.FriendlyName),
		"unique_name": nullable(c.UniqueName), "attributes": c.Attributes, "state": c.State,
		"date_created": ts(c.Created), "date_updated": ts(c.Updated), "timers": timers(c),
		"bindings": nil, "url": u,
		"links": map[string]any{"participants": u + "/Participants", "messages": u + "/Messages", "webhooks": u + "/Webhooks"},
	}
}

var states = []string{"initializing", "inactive", "active", "closed"}

func timers(c *conversation) map[string]any {
	out := map[string]any{}
	if c.inactiveAfter > 0 && c.State == "active" {
		out["date_inactive"] = ts(c.Updated.Add(c.inactiveAfter))
	}
	if c.closedAfter > 0 && c.State != "closed" {
		out["date_closed"] = ts(c.Updated.Add(c.closedAfter))
	}
	return out
}

// serviceSid is the account's default Conversation Service, as every conversation of the account
// made without one names it; roleSid its default participant role.
func (e *Emulator) serviceSid() string { return "IS" + e.opts.AccountSid[2:] }
func (e *Emulator) roleSid() string    { return "RL" + e.opts.AccountSid[2:] }

func (e *Emulator) createConversation(r *http.Request, api string) (int, any, *apiError) {
	now := e.now()
	if e.opts.CreateRate > 0 {
		e.creates = slices.DeleteFunc(e.creates, func(t time.Time) bool { return now.Sub(t) >= time.Second })
		if len(e.creates) >= e.opts.CreateRate {
			e.limited++
			return 0, nil, &apiError{http.StatusTooManyRequests, 20429, "Too many requests: conversation create rate exceeded"}
		}
		e.creates = append(e.creates, now)
	}
	c := &conversation{Sid: e.newSid("CH"), FriendlyName: r.PostForm.Get("FriendlyName"), UniqueName: r.PostForm.Get("UniqueName"),
		Attributes: r.PostForm.Get("Attributes"), State: r.PostForm.Get("State"), MessagingServiceSid: r.PostForm.Get("MessagingServiceSid"),
		Created: now, Updated: now}
	if c.Attributes == "" {
		c.Attributes = "{}"
	}
	if c.State == "" {
		c.State = "active"
	}
	if !slices.Contains(states, c.State) {
		return 0, nil, &apiError{400, 20001, "Invalid State"}
	}
	if c.State == "closed" {
		return 0, nil, &apiError{400, 50384, "A conversation cannot be created closed"}
	}
	if err := e.setTimers(c, r.PostForm); err != nil {
		return 0, nil, err
	}
	if c.UniqueName != "" && e.find(c.UniqueName) != nil {
		return 0, nil, &apiError{409, 50353, "Conversation with provided unique name already exists"}
	}
	e.conversations = append(e.conversations, c)
	return http.StatusCreated, e.conversationJSON(api, c), nil
}

// listConversations lists the conversations, filtered as Twilio does by State and by creation date
// (StartDate, EndDate: ISO 8601; with a date the newest come first).
func (e *Emulator) listConversations(r *http.Request, api string) (int, any, *apiError) {
	q := r.URL.Query()
	state := q.Get("State")
	if state != "" && !slices.Contains([]string{"active", "inactive", "closed"}, state) {
		return 0, nil, &apiError{400, 20001, "Invalid State: want active, inactive or closed"}
	}
	var from, to time.Time
	for _, d := range []struct {
		name string
		dst  *time.Time
	}{{"StartDate", &from}, {"EndDate", &to}} {
		raw := q.Get(d.name)
		if raw == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, raw); err != nil {
				bad := badParam(d.name + " must be an ISO 8601 date")
				return 0, nil, &bad
			}
			if d.name == "EndDate" {
				t = t.Add(24*time.Hour - time.Second)
			}
		}
		*d.dst = t
	}
	list := slices.DeleteFunc(slices.Clone(e.conversations), func(c *conversation) bool {
		return (state != "" && c.State != state) || (!from.IsZero() && c.Created.Before(from)) || (!to.IsZero() && c.Created.After(to))
	})
	if !from.IsZero() || !to.IsZero() {
		slices.Reverse(list)
	}
	return http.StatusOK, page(r, "conversations", list, 50, 100, func(c *conversation) any { return e.conversationJSON(api, c) }), nil
}

func (e *Emulator) fetchConversation(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("sid"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.conversationJSON(api, c), nil
}

func (e *Emulator) updateConversation(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("sid"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	f := r.PostForm
	if s := f.Get("State"); s != "" && !slices.Contains(states, s) {
		return 0, nil, &apiError{400, 20001, "Invalid State"}
	}
	if c.State == "closed" {
		return 0, nil, &apiError{400, codeClosed, "Conversation is closed"}
	}
	if err := e.setTimers(c, f); err != nil {
		return 0, nil, err
	}
	for key, dst := range map[string]*string{"FriendlyName": &c.FriendlyName, "Attributes": &c.Attributes, "UniqueName": &c.UniqueName, "MessagingServiceSid": &c.MessagingServiceSid} {
		if f.Has(key) {
			*dst = f.Get(key)
		}
	}
	c.Updated = e.now()
	if f.Has("State") {
		// As at Twilio, an action through the REST API fires webhooks only when the request asks.
		if webhookEnabled(r) {
			e.setStateLocked(c, f.Get("State"), "API")
		} else {
			c.State = f.Get("State")
		}
	}
	return http.StatusOK, e.conversationJSON(api, c), nil
}

func (e *Emulator) deleteConversation(r *http.Request, _ string) (int, any, *apiError) {
	c := e.find(r.PathValue("sid"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	e.conversations = slices.DeleteFunc(e.conversations, func(x *conversation) bool { return x == c })
	return http.StatusNoContent, nil, nil
}

// ---- Participants

// bindingJSON is a participant's messaging_binding: its address and the business number, or, for a
// chat participant in a group MMS, the number projected to the others; null for a chat participant.
func bindingJSON(p *participant) any {
	switch {
	case p.Address != "":
		b := map[string]any{"type": channel(p.Address), "address": p.Address, "proxy_address": p.ProxyAddress}
		if p.ProjectedAddress != "" {
			b["projected_address"] = p.ProjectedAddress
		}
		return b
	case p.ProjectedAddress != "":
		return map[string]any{"type": channel(p.ProjectedAddress), "projected_address": p.ProjectedAddress}
	}
	return nil
}

func (e *Emulator) participantJSON(api string, c *conversation, p *participant) map[string]any {
	binding := bindingJSON(p)
	return map[string]any{
		"sid": p.Sid, "account_sid": e.opts.AccountSid, "conversation_sid": c.Sid, "identity": nullable(p.Identity),
		"attributes": p.Attributes, "messaging_binding": binding, "role_sid": e.roleSid(),
		"date_created": ts(p.Created), "date_updated": ts(p.Updated),
		"url":                     api + "/Conversations/" + c.Sid + "/Participants/" + p.Sid,
		"last_read_message_index": nil, "last_read_timestamp": nil,
	}
}

func (e *Emulator) createParticipant(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	if c.State == "closed" {
		return 0, nil, &apiError{400, codeClosed, "Conversation is closed"}
	}
	f := r.PostForm
	now := e.now()
	p := &participant{Sid: e.newSid("MB"), Identity: f.Get("Identity"), Attributes: f.Get("Attributes"),
		Address: f.Get("MessagingBinding.Address"), ProxyAddress: f.Get("MessagingBinding.ProxyAddress"),
		ProjectedAddress: f.Get("MessagingBinding.ProjectedAddress"), Created: now, Updated: now}
	if p.Attributes == "" {
		p.Attributes = "{}"
	}
	switch {
	case p.Identity == "" && p.Address == "":
		return 0, nil, &apiError{400, 50405, "Either Identity or MessagingBinding.Address must be provided"}
	case p.Address != "" && p.ProxyAddress == "":
		return 0, nil, &apiError{400, 50407, "MessagingBinding.ProxyAddress is required with MessagingBinding.Address"}
	case p.Address != "" && channel(p.Address) != channel(p.ProxyAddress):
		return 0, nil, &apiError{400, 50407, "Address and proxy address must be on the same channel"}
	}
	for _, other := range e.conversations {
		for _, q := range other.participants {
			same := (p.Address != "" && q.Address == p.Address && q.ProxyAddress == p.ProxyAddress) || (p.Identity != "" && q.Identity == p.Identity)
			switch {
			case same && other == c:
				return 0, nil, &apiError{409, 50433, "Participant already exists"}
			case same && p.Address != "" && other.State != "closed":
				return 0, nil, &apiError{409, 50416, fmt.Sprintf("A binding for this participant and proxy address already exists in Conversation %s", other.Sid)}
			}
		}
	}
	c.participants = append(c.participants, p)
	if webhookEnabled(r) {
		e.fireParticipantAddedLocked(c, p)
	}
	return http.StatusCreated, e.participantJSON(api, c, p), nil
}

func (e *Emulator) listParticipants(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, page(r, "participants", c.participants, 50, 100, func(p *participant) any { return e.participantJSON(api, c, p) }), nil
}

func findBySid[T any](items []*T, sid string, key func(*T) string) *T {
	for _, it := range items {
		if key(it) == sid {
			return it
		}
	}
	return nil
}

func (e *Emulator) fetchParticipant(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	p := findBySid(c.participants, r.PathValue("sid"), func(p *participant) string { return p.Sid })
	if p == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.participantJSON(api, c, p), nil
}

func (e *Emulator) deleteParticipant(r *http.Request, _ string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	n := len(c.participants)
	c.participants = slices.DeleteFunc(c.participants, func(p *participant) bool { return p.Sid == r.PathValue("sid") })
	if len(c.participants) == n {
		return 0, nil, &errNotFound
	}
	return http.StatusNoContent, nil, nil
}

// webhookEnabled reports whether a REST request asks for the webhooks its action would fire: at
// Twilio only actions of SDK clients and phones fire them unless X-Twilio-Webhook-Enabled is true.
func webhookEnabled(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("X-Twilio-Webhook-Enabled"), "true")
}

// ---- Messages

func (e *Emulator) messageJSON(api string, c *conversation, m *message) map[string]any {
	u := api + "/Conversations/" + c.Sid + "/Messages/" + m.Sid
	var delivery any
	if m.total > 0 {
		delivery = map[string]any{"total": m.total, "sent": share(m.delivered+m.failed+m.undelivered, m.total), "delivered": share(m.delivered, m.total),
			"read": "none", "undelivered": share(m.undelivered, m.total), "failed": share(m.failed, m.total)}
	}
	return map[string]any{
		"sid": m.Sid, "account_sid": e.opts.AccountSid, "conversation_sid": c.Sid, "index": m.Index,
		"author": m.Author, "body": nullable(m.Body), "media": mediaList(m.media), "attributes": m.Attributes,
		"participant_sid": nullable(m.ParticipantSid), "date_created": ts(m.Created), "date_updated": ts(m.Updated),
		"url": u, "delivery": delivery, "links": map[string]any{"delivery_receipts": u + "/Receipts", "channel_metadata": u + "/ChannelMetadata"},
		"content_sid": nullable(m.ContentSid),
	}
}

func isRaw(body any) bool {
	_, ok := body.(rawBody)
	return ok
}

func share(n, total int) string {
	switch {
	case n == 0:
		return "none"
	case n == total:
		return "all"
	}
	return "some"
}

func (e *Emulator) createMessage(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	if c.State == "closed" {
		return 0, nil, &apiError{400, codeClosed, "Conversation is closed"}
	}
	f := r.PostForm
	if f.Get("Body") == "" && f.Get("ContentSid") == "" && f.Get("MediaSid") == "" {
		return 0, nil, &apiError{400, 50006, "Message body, media or content is required"}
	}
	if cv := f.Get("ContentVariables"); cv != "" && !json.Valid([]byte(cv)) {
		return 0, nil, &apiError{400, 21656, "The ContentVariables Parameter is invalid"}
	}
	if a := f.Get("Attributes"); a != "" && !json.Valid([]byte(a)) {
		return 0, nil, &apiError{400, 50008, "Attributes must be a valid JSON string"}
	}
	author := f.Get("Author")
	if author == "" {
		author = "system"
	}
	var attached []*media
	if sid := f.Get("MediaSid"); sid != "" && f.Get("ContentSid") == "" { // a Content template ignores MediaSid
		md, err := e.attachable(sid)
		if err != nil {
			return 0, nil, err
		}
		attached = append(attached, md)
	}
	m := e.addMessage(c, author, f.Get("Body"), f.Get("ContentSid"), f.Get("ContentVariables"), f.Get("Attributes"), attached)
	if webhookEnabled(r) {
		e.fireLocked(c, m, "API")
	}
	return http.StatusCreated, e.messageJSON(api, c, m), nil
}

func (e *Emulator) listMessages(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	msgs := c.messages
	switch r.URL.Query().Get("Order") {
	case "", "asc":
	case "desc":
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	default:
		return 0, nil, &apiError{400, 20001, "Invalid Order"}
	}
	return http.StatusOK, page(r, "messages", msgs, 50, 100, func(m *message) any { return e.messageJSON(api, c, m) }), nil
}

func (e *Emulator) fetchMessage(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	m := findBySid(c.messages, r.PathValue("sid"), func(m *message) string { return m.Sid })
	if m == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.messageJSON(api, c, m), nil
}

// ---- Delivery receipts

func (e *Emulator) receiptJSON(api string, c *conversation, m *message, r *receipt) map[string]any {
	return map[string]any{
		"account_sid": e.opts.AccountSid, "conversation_sid": c.Sid, "sid": r.Sid, "message_sid": m.Sid,
		"channel_message_sid": r.ChannelMessageSid, "participant_sid": r.ParticipantSid, "status": r.Status,
		"error_code": r.ErrorCode, "date_created": ts(r.Created), "date_updated": ts(r.Updated),
		"url": api + "/Conversations/" + c.Sid + "/Messages/" + m.Sid + "/Receipts/" + r.Sid,
	}
}

// messageOf finds the request's conversation and message. Callers hold e.mu.
func (e *Emulator) messageOf(r *http.Request) (*conversation, *message) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return nil, nil
	}
	return c, findBySid(c.messages, r.PathValue("msg"), func(m *message) string { return m.Sid })
}

func (e *Emulator) listReceipts(r *http.Request, api string) (int, any, *apiError) {
	c, m := e.messageOf(r)
	if m == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, page(r, "delivery_receipts", m.receipts, 50, 100, func(rc *receipt) any { return e.receiptJSON(api, c, m, rc) }), nil
}

func (e *Emulator) fetchReceipt(r *http.Request, api string) (int, any, *apiError) {
	c, m := e.messageOf(r)
	if m == nil {
		return 0, nil, &errNotFound
	}
	rc := findBySid(m.receipts, r.PathValue("sid"), func(rc *receipt) string { return rc.Sid })
	if rc == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.receiptJSON(api, c, m, rc), nil
}

// ---- Webhooks

// maxWebhooks is Twilio's limit of scoped webhooks per conversation.
const maxWebhooks = 5

func (e *Emulator) webhookJSON(api string, c *conversation, h *webhook) map[string]any {
	cfg := map[string]any{}
	if h.URL != "" {
		cfg["url"] = h.URL
		cfg["method"] = h.Method
	}
	if len(h.Filters) > 0 {
		cfg["filters"] = h.Filters
	}
	if len(h.Triggers) > 0 {
		cfg["triggers"] = h.Triggers
	}
	if h.FlowSid != "" {
		cfg["flow_sid"] = h.FlowSid
	}
	if h.ReplayAfter != nil {
		cfg["replay_after"] = *h.ReplayAfter
	}
	return map[string]any{
		"sid": h.Sid, "account_sid": e.opts.AccountSid, "conversation_sid": c.Sid, "target": h.Target,
		"url": api + "/Conversations/" + c.Sid + "/Webhooks/" + h.Sid, "configuration": cfg,
		"date_created": ts(h.Created), "date_updated": ts(h.Updated),
	}
}

// applyWebhookConfig copies Configuration.* from f onto h.
func applyWebhookConfig(h *webhook, f url.Values) *apiError {
	if f.Has("Configuration.Url") {
		u, err := url.Parse(f.Get("Configuration.Url"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &apiError{400, 50366, "Configuration.Url must be an absolute http(s) URL"}
		}
		h.URL = f.Get("Configuration.Url")
	}
	if f.Has("Configuration.Method") {
		m := strings.ToUpper(f.Get("Configuration.Method"))
		if m != "GET" && m != "POST" {
			return &apiError{400, 20001, "Configuration.Method must be GET or POST"}
		}
		h.Method = m
	}
	if f.Has("Configuration.Filters") {
		h.Filters = f["Configuration.Filters"]
	}
	if f.Has("Configuration.Triggers") {
		h.Triggers = f["Configuration.Triggers"]
	}
	if f.Has("Configuration.FlowSid") {
		h.FlowSid = f.Get("Configuration.FlowSid")
	}
	if f.Has("Configuration.ReplayAfter") {
		n, err := strconv.Atoi(f.Get("Configuration.ReplayAfter"))
		if err != nil {
			return &apiError{400, 20001, "Configuration.ReplayAfter must be an integer"}
		}
		h.ReplayAfter = &n
	}
	return nil
}

func (e *Emulator) createWebhook(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	f := r.PostForm
	now := e.now()
	h := &webhook{Sid: e.newSid("WH"), Target: f.Get("Target"), Method: "POST", Created: now, Updated: now}
	if !slices.Contains([]string{"webhook", "trigger", "studio"}, h.Target) {
		return 0, nil, &apiError{400, 20001, "Target must be webhook, trigger or studio"}
	}
	if err := applyWebhookConfig(h, f); err != nil {
		return 0, nil, err
	}
	if h.Target != "studio" && h.URL == "" {
		return 0, nil, &apiError{400, 50366, "Configuration.Url is required"}
	}
	if h.Target == "studio" && h.FlowSid == "" {
		return 0, nil, &apiError{400, 20001, "Configuration.FlowSid is required"}
	}
	if len(c.webhooks) >= maxWebhooks {
		return 0, nil, &apiError{400, 50361, "Too many conversation webhooks"}
	}
	c.webhooks = append(c.webhooks, h)
	if h.Target == "webhook" && h.ReplayAfter != nil {
		for _, m := range c.messages {
			if m.Index >= *h.ReplayAfter {
				e.fireOneLocked(c, m, h, "API")
			}
		}
	}
	return http.StatusCreated, e.webhookJSON(api, c, h), nil
}

func (e *Emulator) listWebhooks(r *http.Request, api string) (int, any, *apiError) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, page(r, "webhooks", c.webhooks, maxWebhooks, maxWebhooks, func(h *webhook) any { return e.webhookJSON(api, c, h) }), nil
}

func (e *Emulator) lookupWebhook(r *http.Request) (*conversation, *webhook) {
	c := e.find(r.PathValue("conv"))
	if c == nil {
		return nil, nil
	}
	return c, findBySid(c.webhooks, r.PathValue("sid"), func(h *webhook) string { return h.Sid })
}

func (e *Emulator) fetchWebhook(r *http.Request, api string) (int, any, *apiError) {
	c, h := e.lookupWebhook(r)
	if h == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.webhookJSON(api, c, h), nil
}

func (e *Emulator) updateWebhook(r *http.Request, api string) (int, any, *apiError) {
	c, h := e.lookupWebhook(r)
	if h == nil {
		return 0, nil, &errNotFound
	}
	changed := *h
	if err := applyWebhookConfig(&changed, r.PostForm); err != nil {
		return 0, nil, err
	}
	*h = changed
	h.Updated = e.now()
	return http.StatusOK, e.webhookJSON(api, c, h), nil
}

func (e *Emulator) deleteWebhook(r *http.Request, _ string) (int, any, *apiError) {
	c, h := e.lookupWebhook(r)
	if h == nil {
		return 0, nil, &errNotFound
	}
	c.webhooks = slices.DeleteFunc(c.webhooks, func(x *webhook) bool { return x == h })
	return http.StatusNoContent, nil, nil
}
