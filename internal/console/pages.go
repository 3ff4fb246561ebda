package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/optinkit/optin/internal/chat"
)

// listSize is how many chats the list shows at once.
const listSize = 50

type chatsData struct {
	page
	State  string
	Query  string
	States []chat.State
	Sum    summary
	Chats  []chat.Chat
	// Next is the cursor of the following page, empty at the end.
	Next string
}

func (c *console) chatsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := chatsData{State: q.Get("state"), Query: strings.TrimSpace(q.Get("q")), States: chat.States}
	state := chat.State(d.State)
	if state != "" && !slices.Contains(chat.States, state) {
		c.fail(w, r, http.StatusBadRequest, "Unknown state.")
		return
	}
	var before int64
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			c.fail(w, r, http.StatusBadRequest, "That page cursor is not one the console gave.")
			return
		}
		before = n
	}
	sum, err := c.summary.get(r.Context())
	if err != nil {
		c.failChat(w, r, err)
		return
	}
	d.Sum = sum
	if d.Query == "" {
		list, next, err := c.chats.List(r.Context(), state, listSize, before)
		if err != nil {
			c.failChat(w, r, err)
			return
		}
		d.Chats = list
		if next > 0 {
			d.Next = strconv.FormatInt(next, 10)
		}
	} else {
		d.Chats = c.search(r, state, d.Query, sum.recent)
	}
	live := r.URL.Query()
	live.Set("partial", "1")
	d.page = c.page(r, "Chats", "chats", "/console/?"+live.Encode())
	c.render(w, r, http.StatusOK, "chats", d)
}

// search finds the chat whose id or conversation SID is query, and the recent chats whose id or SID
// contains it.
func (c *console) search(r *http.Request, state chat.State, query string, recent []chat.Chat) []chat.Chat {
	var out []chat.Chat
	if exact, err := c.chats.Get(r.Context(), query); err == nil && (state == "" || exact.State == state) {
		out = append(out, exact)
	}
	needle := strings.ToLower(query)
	for _, ch := range recent {
		if len(out) == listSize {
			break
		}
		if state != "" && ch.State != state || len(out) > 0 && out[0].ID == ch.ID {
			continue
		}
		if strings.Contains(strings.ToLower(ch.ID), needle) || strings.Contains(strings.ToLower(ch.ConversationSid), needle) {
			out = append(out, ch)
		}
	}
	return out
}

type chatData struct {
	page
	Chat  chat.Chat
	Steps []chat.StepView
}

func (c *console) chatPage(w http.ResponseWriter, r *http.Request) {
	ch, err := c.chats.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		c.failChat(w, r, err)
		return
	}
	d := chatData{Chat: ch, Steps: ch.StartSteps()}
	d.page = c.page(r, "Chat "+ch.ID, "chats", "/console/chats/"+urlPath(ch.ID)+"?partial=1")
	c.render(w, r, http.StatusOK, "chat", d)
}

func (c *console) endChat(w http.ResponseWriter, r *http.Request) {
	ch, err := c.chats.End(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		c.failChat(w, r, err)
		return
	}
	c.summary.invalidate()
	http.Redirect(w, r, "/console/chats/"+urlPath(ch.ID), http.StatusSeeOther)
}

type poolRow struct {
	Number string
	InUse  int
}

type poolData struct {
	Channel string
	Numbers []poolRow
	InUse   int
	// Idle counts the numbers without a pair in use.
	Idle int
}

type poolsData struct {
	page
	Pools []*poolData
}

func (c *console) poolsPage(w http.ResponseWriter, r *http.Request) {
	usage, err := c.pools.Usage(r.Context())
	if err != nil {
		c.failChat(w, r, err)
		return
	}
	d := poolsData{page: c.page(r, "Pools", "pools", "/console/pools?partial=1")}
	byChannel := map[string]*poolData{}
	for _, u := range usage {
		p := byChannel[u.Channel]
		if p == nil {
			p = &poolData{Channel: u.Channel}
			byChannel[u.Channel] = p
			d.Pools = append(d.Pools, p)
		}
		p.Numbers = append(p.Numbers, poolRow{Number: u.Number, InUse: u.InUse})
		p.InUse += u.InUse
		if u.InUse == 0 {
			p.Idle++
		}
	}
	c.render(w, r, http.StatusOK, "pools", d)
}

// urlPath escapes a chat id for a path segment.
func urlPath(id string) string { return url.PathEscape(id) }
