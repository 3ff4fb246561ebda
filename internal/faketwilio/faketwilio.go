// Package faketwilio is a small stand-in for the Conversations REST API, for tests: it records every
// request exactly as received and fails on cue. It knows only the calls the opt-in and a chat's start make.
package faketwilio

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Request is one call as the fake received it.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Form   url.Values
	// WebhookEnabled is the X-Twilio-Webhook-Enabled header.
	WebhookEnabled string
}

// Fault makes one call fail.
type Fault struct {
	Status     int
	Code       int
	RetryAfter string
	// Drop closes the connection without an answer.
	Drop bool
	// Applied performs the call's effect before failing: an ambiguous failure.
	Applied bool
}

// Routes that faults attach to.
const (
	RouteCreateMessage = "create message"
	RouteListMessages  = "list messages"
	RouteListWebhooks  = "list webhooks"
	RouteDeleteWebhook = "delete webhook"

	RouteCreateConversation = "create conversation"
	RouteFetchConversation  = "fetch conversation"
	RouteUpdateConversation = "update conversation"
	RouteCreateParticipant  = "create participant"
	RouteCreateWebhook      = "create webhook"
)

// Message is a message held by a conversation.
type Message struct {
	Sid, Author, Body, ContentSid, ContentVariables, Attributes string
}

type conversation struct {
	sid, uniqueName, state string
	webhooks               []string
	hooks                  map[string]hookConfig // configuration of the webhooks created through the API
	messages               []Message
	participants           []string // address|proxy
}

type hookConfig struct {
	url, method string
	filters     []string
}

// Server is the fake API.
type Server struct {
	*httptest.Server
	user, pass string

	mu            sync.Mutex
	requests      []Request
	conversations map[string]*conversation
	faults        map[string][]Fault
	nextSid       int
	created       int
}

// New starts a fake that accepts the given Basic credentials; Close it when done.
func New(user, pass string) *Server {
	s := &Server{user: user, pass: pass, conversations: map[string]*conversation{}, faults: map[string][]Fault{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/Conversations/{conv}/Messages", s.route(RouteCreateMessage, s.createMessage))
	mux.HandleFunc("GET /v1/Conversations/{conv}/Messages", s.route(RouteListMessages, s.listMessages))
	mux.HandleFunc("GET /v1/Conversations/{conv}/Webhooks", s.route(RouteListWebhooks, s.listWebhooks))
	mux.HandleFunc("DELETE /v1/Conversations/{conv}/Webhooks/{sid}", s.route(RouteDeleteWebhook, s.deleteWebhook))
	mux.HandleFunc("POST /v1/Conversations", s.route(RouteCreateConversation, s.createConversation))
	mux.HandleFunc("GET /v1/Conversations/{conv}", s.route(RouteFetchConversation, s.fetchConversation))
	mux.HandleFunc("POST /v1/Conversations/{conv}", s.route(RouteUpdateConversation, s.updateConversation))
	mux.HandleFunc("POST /v1/Conversations/{conv}/Participants", s.route(RouteCreateParticipant, s.createParticipant))
	mux.HandleFunc("POST /v1/Conversations/{conv}/Webhooks", s.route(RouteCreateWebhook, s.createWebhook))
	s.Server = httptest.NewServer(mux)
	return s
}

// AddConversation creates a conversation holding the given scoped webhooks.
func (s *Server) AddConversation(sid string, webhooks ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conversations[sid] = &conversation{sid: sid, state: "active", webhooks: append([]string(nil), webhooks...)}
}

// Bind puts address on proxy in a conversation made outside the service under test.
func (s *Server) Bind(conv, address, proxy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conversations[conv]
	if c == nil {
		c = &conversation{sid: conv, state: "active"}
		s.conversations[conv] = c
	}
	c.participants = append(c.participants, address+"|"+proxy)
}

// Conversation reports a conversation's state and participants (address|proxy), found by SID or unique name.
func (s *Server) Conversation(key string) (state string, participants []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.find(key)
	if c == nil {
		return "", nil, false
	}
	return c.state, append([]string(nil), c.participants...), true
}

// find looks a conversation up by SID or unique name. Callers hold s.mu.
func (s *Server) find(key string) *conversation {
	if c := s.conversations[key]; c != nil {
		return c
	}
	for _, c := range s.conversations {
		if c.uniqueName != "" && c.uniqueName == key {
			return c
		}
	}
	return nil
}

// Fail queues faults for a route; each call takes the next one.
func (s *Server) Fail(route string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[route] = append(s.faults[route], faults...)
}

// Created counts the conversations created through the API (a create refused, e.g. 50353, does not count).
func (s *Server) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// ClearFaults drops every fault not yet used.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]Fault{}
}

// Requests returns every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Messages returns a conversation's messages, oldest first.
func (s *Server) Messages(conv string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conversations[conv]; c != nil {
		return append([]Message(nil), c.messages...)
	}
	return nil
}

// Webhooks returns a conversation's remaining webhooks.
func (s *Server) Webhooks(conv string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conversations[conv]; c != nil {
		return append([]string(nil), c.webhooks...)
	}
	return nil
}

type handler func(w http.ResponseWriter, r *http.Request, c *conversation) (status int, body any)

func (s *Server) route(name string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), WebhookEnabled: r.Header.Get("X-Twilio-Webhook-Enabled")}
		if r.Method == http.MethodPost {
			req.Form = r.PostForm
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, req)

		if u, p, ok := r.BasicAuth(); !ok || u != s.user || p != s.pass {
			writeError(w, 401, 20003, "Authenticate")
			return
		}
		c := s.find(r.PathValue("conv"))
		if c == nil && name != RouteCreateConversation {
			writeError(w, 404, 20404, "The requested resource was not found")
			return
		}
		var fault *Fault
		if q := s.faults[name]; len(q) > 0 {
			fault, s.faults[name] = &q[0], q[1:]
		}
		if fault != nil && !fault.Applied {
			s.fail(w, *fault)
			return
		}
		status, body := h(w, r, c)
		if fault != nil {
			s.fail(w, *fault)
			return
		}
		if body == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	}
}

func (s *Server) fail(w http.ResponseWriter, f Fault) {
	if f.Drop {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeError(w, f.Status, f.Code, http.StatusText(f.Status))
}

func (s *Server) sid(prefix string) string {
	s.nextSid++
	return fmt.Sprintf("%s%032d", prefix, s.nextSid)
}

func (s *Server) createMessage(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	author := r.PostForm.Get("Author")
	if author == "" {
		author = "system"
	}
	m := Message{Sid: s.sid("IM"), Author: author, Body: r.PostForm.Get("Body"), ContentSid: r.PostForm.Get("ContentSid"),
		ContentVariables: r.PostForm.Get("ContentVariables"), Attributes: r.PostForm.Get("Attributes")}
	if m.Attributes == "" {
		m.Attributes = "{}"
	}
	c.messages = append(c.messages, m)
	return http.StatusCreated, s.messageJSON(r.PathValue("conv"), len(c.messages)-1, m)
}

func (s *Server) messageJSON(conv string, index int, m Message) map[string]any {
	return map[string]any{
		"sid": m.Sid, "conversation_sid": conv, "account_sid": s.user, "index": index,
		"author": m.Author, "body": nilIfEmpty(m.Body), "content_sid": nilIfEmpty(m.ContentSid),
		"attributes": m.Attributes, "date_created": time.Now().UTC().Format(time.RFC3339),
		"url": s.URL + "/v1/Conversations/" + conv + "/Messages/" + m.Sid,
	}
}

func (s *Server) listMessages(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	size := pageSize(r, 50, 100)
	out := []map[string]any{}
	for i := len(c.messages) - 1; i >= 0 && len(out) < size; i-- {
		out = append(out, s.messageJSON(r.PathValue("conv"), i, c.messages[i]))
	}
	if r.URL.Query().Get("Order") != "desc" {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return http.StatusOK, map[string]any{"messages": out, "meta": s.meta(r, "messages", size, 0, false)}
}

// listWebhooks pages like Twilio: at most 5 a page, next_page_url absolute.
func (s *Server) listWebhooks(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	size := pageSize(r, 5, 5)
	page, _ := strconv.Atoi(r.URL.Query().Get("Page"))
	start := min(page*size, len(c.webhooks))
	end := min(start+size, len(c.webhooks))
	out := []map[string]any{}
	for _, sid := range c.webhooks[start:end] {
		cfg, ok := c.hooks[sid]
		if !ok {
			cfg = hookConfig{url: "https://optin.example.com/webhooks/conversations", method: "GET", filters: []string{"onMessageAdded"}}
		}
		out = append(out, map[string]any{
			"sid": sid, "conversation_sid": c.sid, "account_sid": s.user, "target": "webhook",
			"configuration": map[string]any{"url": cfg.url, "method": cfg.method, "filters": cfg.filters},
		})
	}
	return http.StatusOK, map[string]any{"webhooks": out, "meta": s.meta(r, "webhooks", size, page, end < len(c.webhooks))}
}

func (s *Server) deleteWebhook(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	sid := r.PathValue("sid")
	for i, w := range c.webhooks {
		if w == sid {
			c.webhooks = append(c.webhooks[:i], c.webhooks[i+1:]...)
			return http.StatusNoContent, nil
		}
	}
	return http.StatusNotFound, map[string]any{"code": 20404, "message": "The requested resource was not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}
}

func (s *Server) conversationJSON(c *conversation) map[string]any {
	return map[string]any{"sid": c.sid, "account_sid": s.user, "unique_name": nilIfEmpty(c.uniqueName), "state": c.state,
		"url": s.URL + "/v1/Conversations/" + c.sid}
}

func (s *Server) createConversation(_ http.ResponseWriter, r *http.Request, _ *conversation) (int, any) {
	name := r.PostForm.Get("UniqueName")
	if name != "" && s.find(name) != nil {
		return http.StatusConflict, map[string]any{"code": 50353, "message": "Conversation with provided unique name already exists", "status": 409}
	}
	c := &conversation{sid: s.sid("CH"), uniqueName: name, state: "active"}
	if st := r.PostForm.Get("State"); st != "" {
		c.state = st
	}
	s.conversations[c.sid] = c
	s.created++
	return http.StatusCreated, s.conversationJSON(c)
}

func (s *Server) fetchConversation(_ http.ResponseWriter, _ *http.Request, c *conversation) (int, any) {
	return http.StatusOK, s.conversationJSON(c)
}

func (s *Server) updateConversation(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	if c.state == "closed" {
		return http.StatusBadRequest, map[string]any{"code": 50377, "message": "Conversation is closed", "status": 400}
	}
	if st := r.PostForm.Get("State"); st != "" {
		c.state = st
	}
	return http.StatusOK, s.conversationJSON(c)
}

func (s *Server) createParticipant(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	pair := r.PostForm.Get("MessagingBinding.Address") + "|" + r.PostForm.Get("MessagingBinding.ProxyAddress")
	for _, p := range c.participants {
		if p == pair {
			return http.StatusConflict, map[string]any{"code": 50437, "message": "Participant already exists in this conversation", "status": 409}
		}
	}
	for _, other := range s.conversations {
		if other != c && other.state != "closed" && slices.Contains(other.participants, pair) {
			return http.StatusConflict, map[string]any{"code": 50416, "message": "A binding for this participant and proxy address already exists in another conversation", "status": 409}
		}
	}
	c.participants = append(c.participants, pair)
	return http.StatusCreated, map[string]any{"sid": s.sid("MB"), "conversation_sid": c.sid, "account_sid": s.user}
}

func (s *Server) createWebhook(_ http.ResponseWriter, r *http.Request, c *conversation) (int, any) {
	sid := s.sid("WH")
	cfg := hookConfig{url: r.PostForm.Get("Configuration.Url"), method: r.PostForm.Get("Configuration.Method"), filters: r.PostForm["Configuration.Filters"]}
	if c.hooks == nil {
		c.hooks = map[string]hookConfig{}
	}
	c.hooks[sid] = cfg
	c.webhooks = append(c.webhooks, sid)
	return http.StatusCreated, map[string]any{"sid": sid, "conversation_sid": c.sid, "account_sid": s.user, "target": "webhook",
		"configuration": map[string]any{"url": cfg.url, "method": cfg.method, "filters": cfg.filters}}
}

func (s *Server) meta(r *http.Request, key string, size, page int, more bool) map[string]any {
	base := s.URL + r.URL.Path
	m := map[string]any{
		"page": page, "page_size": size, "key": key, "previous_page_url": nil, "next_page_url": nil,
		"first_page_url": fmt.Sprintf("%s?PageSize=%d&Page=0", base, size),
		"url":            fmt.Sprintf("%s?PageSize=%d&Page=%d", base, size, page),
	}
	if more {
		m["next_page_url"] = fmt.Sprintf("%s?PageSize=%d&Page=%d&PageToken=PT%d", base, size, page+1, page+1)
	}
	return m
}

func pageSize(r *http.Request, def, maxSize int) int {
	n, err := strconv.Atoi(r.URL.Query().Get("PageSize"))
	if err != nil || n <= 0 {
		n = def
	}
	return min(n, maxSize)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
