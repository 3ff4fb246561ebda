package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/optinkit/optin/internal/chat"
)

// Chats is what the admin API needs of the chat service.
type Chats interface {
	Start(ctx context.Context, r chat.StartRequest) (chat.Chat, bool, error)
	Get(ctx context.Context, key string) (chat.Chat, error)
	List(ctx context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error)
	End(ctx context.Context, key string) (chat.Chat, error)
}

// maxAPIBody bounds an admin request body: a start request is at most a few KiB.
const maxAPIBody = 64 << 10

// Page sizes of GET /v1/chats.
const (
	defaultListLimit = 50
	maxListLimit     = 200
)

// startBody is POST /v1/chats' body.
type startBody struct {
	ID       string          `json:"id"`
	Customer partyBody       `json:"customer"`
	Rider    partyBody       `json:"rider"`
	Invite   *inviteBody     `json:"invite"`
	TTL      string          `json:"ttl"`
	Metadata json.RawMessage `json:"metadata"`
}

type partyBody struct {
	Address string `json:"address"`
	Name    string `json:"name"`
}

type inviteBody struct {
	ContentSid       string            `json:"content_sid"`
	ContentVariables map[string]string `json:"content_variables"`
	Body             string            `json:"body"`
}

func handleStartChat(chats Chats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b startBody
		if err := decodeJSON(w, r, &b); err != nil {
			writeProblem(w, r, err)
			return
		}
		req := chat.StartRequest{
			ID:       b.ID,
			Customer: chat.PartyRequest{Address: b.Customer.Address, Name: b.Customer.Name},
			Rider:    chat.PartyRequest{Address: b.Rider.Address, Name: b.Rider.Name},
			TTL:      b.TTL,
			Metadata: b.Metadata,
		}
		if b.Invite != nil {
			req.Invite = &chat.Invite{ContentSid: b.Invite.ContentSid, ContentVariables: b.Invite.ContentVariables, Body: b.Invite.Body}
		}
		c, created, err := chats.Start(r.Context(), req)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
			w.Header().Set("Location", "/v1/chats/"+c.ID)
		}
		writeJSON(w, status, viewChat(c))
	}
}

func handleGetChat(chats Chats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := chats.Get(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, viewChat(c))
	}
}

func handleEndChat(chats Chats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := chats.End(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, viewChat(c))
	}
}

func handleListChats(chats Chats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var fields []chat.FieldError
		state := chat.State(q.Get("state"))
		if state != "" && !validState(state) {
			fields = append(fields, chat.FieldError{Field: "state", Message: "unknown state"})
		}
		limit := defaultListLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxListLimit {
				fields = append(fields, chat.FieldError{Field: "limit", Message: "must be 1 to 200"})
			}
			limit = n
		}
		var before int64
		if v := q.Get("cursor"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				fields = append(fields, chat.FieldError{Field: "cursor", Message: "not a cursor this API gave"})
			}
			before = n
		}
		if len(fields) > 0 {
			writeProblem(w, r, &chat.ValidationError{Fields: fields})
			return
		}
		list, next, err := chats.List(r.Context(), state, limit, before)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		out := struct {
			Chats      []chatView `json:"chats"`
			NextCursor *string    `json:"next_cursor"`
		}{Chats: make([]chatView, 0, len(list))}
		for _, c := range list {
			out.Chats = append(out.Chats, viewChat(c))
		}
		if next > 0 {
			s := strconv.FormatInt(next, 10)
			out.NextCursor = &s
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func validState(s chat.State) bool {
	for _, v := range chat.States {
		if v == s {
			return true
		}
	}
	return false
}

// decodeJSON reads one JSON object of at most maxAPIBody bytes into v; unknown fields are refused, so
// a misspelt field is an error and not a silent default.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return malformed("reading body failed")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed("body is not the JSON object expected: " + err.Error())
	}
	if dec.More() {
		return malformed("trailing data after the JSON object")
	}
	return nil
}

// chatView is a chat as the API shows it.
type chatView struct {
	ID              string           `json:"id"`
	ConversationSid *string          `json:"conversation_sid"`
	State           chat.State       `json:"state"`
	Reason          *string          `json:"reason"`
	Customer        partyView        `json:"customer"`
	Rider           partyView        `json:"rider"`
	CreatedAt       time.Time        `json:"created_at"`
	UpdatedAt       time.Time        `json:"updated_at"`
	ExpiresAt       time.Time        `json:"expires_at"`
	Metadata        json.RawMessage  `json:"metadata"`
	Error           *failureView     `json:"error"`
	History         []transitionView `json:"history"`
}

type partyView struct {
	Address      string  `json:"address"`
	ProxyAddress string  `json:"proxy_address"`
	Name         *string `json:"name"`
}

type failureView struct {
	TwilioCode int    `json:"twilio_code"`
	Detail     string `json:"detail"`
}

type transitionView struct {
	State chat.State `json:"state"`
	At    time.Time  `json:"at"`
}

func viewChat(c chat.Chat) chatView {
	v := chatView{
		ID: c.ID, State: c.State, Customer: viewParty(c.Customer), Rider: viewParty(c.Rider),
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt,
		Metadata: json.RawMessage("null"), History: make([]transitionView, 0, len(c.History)),
	}
	if c.ConversationSid != "" {
		v.ConversationSid = &c.ConversationSid
	}
	if c.Reason != "" {
		v.Reason = &c.Reason
	}
	if len(c.Metadata) > 0 {
		v.Metadata = c.Metadata
	}
	if c.Error != nil {
		v.Error = &failureView{TwilioCode: c.Error.TwilioCode, Detail: c.Error.Detail}
	}
	for _, t := range c.History {
		v.History = append(v.History, transitionView{State: t.State, At: t.At})
	}
	return v
}

func viewParty(p chat.Party) partyView {
	v := partyView{Address: p.Address, ProxyAddress: p.ProxyAddress}
	if p.Name != "" {
		v.Name = &p.Name
	}
	return v
}
