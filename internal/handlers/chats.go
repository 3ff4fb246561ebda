package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/numberpool"
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
	Mode     string          `json:"mode"`
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
			Mode:     b.Mode,
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
		writeJSON(w, status, c.View())
	}
}

func handleGetChat(chats Chats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := chats.Get(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c.View())
	}
}

func handleEndChat(chats Chats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := chats.End(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c.View())
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
			Chats      []chat.View `json:"chats"`
			NextCursor *string     `json:"next_cursor"`
		}{Chats: make([]chat.View, 0, len(list))}
		for _, c := range list {
			out.Chats = append(out.Chats, c.View())
		}
		if next > 0 {
			s := strconv.FormatInt(next, 10)
			out.NextCursor = &s
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// Pools is what the admin API shows of the number pools.
type Pools interface {
	Usage(ctx context.Context) ([]numberpool.Usage, error)
}

type numberView struct {
	Number     string `json:"number"`
	PairsInUse int    `json:"pairs_in_use"`
}

type poolView struct {
	Channel string       `json:"channel"`
	Numbers []numberView `json:"numbers"`
}

func handlePools(pools Pools) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		usage, err := pools.Usage(r.Context())
		if err != nil {
			writeProblem(w, r, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err))
			return
		}
		byChannel := map[string]*poolView{}
		out := struct {
			Pools []*poolView `json:"pools"`
		}{Pools: []*poolView{}}
		for _, u := range usage {
			p := byChannel[u.Channel]
			if p == nil {
				p = &poolView{Channel: u.Channel, Numbers: []numberView{}}
				byChannel[u.Channel] = p
				out.Pools = append(out.Pools, p)
			}
			p.Numbers = append(p.Numbers, numberView{Number: u.Number, PairsInUse: u.InUse})
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
