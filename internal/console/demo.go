package console

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/optinkit/optin/internal/chat"
)

// maxSay bounds what a demo phone sends (WhatsApp's own limit is 4,096 characters).
const maxSay = 1600

type phone struct {
	Role    string
	Name    string
	Address string
	Proxy   string
	Thread  []Message
}

type demoData struct {
	page
	Chat       chat.Chat
	Deliveries []chat.Chat
	Phones     []phone
}

// demoPage shows one delivery's two phones: the chat asked for, or the newest.
func (c *console) demoPage(w http.ResponseWriter, r *http.Request) {
	recent, _, err := c.chats.List(r.Context(), "", 20, 0)
	if err != nil {
		c.failChat(w, r, err)
		return
	}
	id := r.URL.Query().Get("chat")
	d := demoData{Deliveries: recent}
	switch {
	case id != "":
		if d.Chat, err = c.chats.Get(r.Context(), id); err != nil {
			c.failChat(w, r, err)
			return
		}
	case len(recent) > 0:
		d.Chat = recent[0]
	}
	if d.Chat.ID != "" {
		for _, p := range []struct {
			role  string
			party chat.Party
		}{{"customer", d.Chat.Customer}, {"rider", d.Chat.Rider}} {
			d.Phones = append(d.Phones, phone{
				Role: p.role, Name: p.party.Name, Address: p.party.Address, Proxy: p.party.ProxyAddress,
				Thread: c.demo.Thread(p.party.Address, p.party.ProxyAddress),
			})
		}
	}
	live := "/console/demo?partial=1"
	if d.Chat.ID != "" {
		live += "&chat=" + url.QueryEscape(d.Chat.ID)
	}
	d.page = c.page(r, "Demo", "demo", live)
	c.render(w, r, http.StatusOK, "demo", d)
}

// demoSay sends a phone's text box: the chat's party writes to its business number.
func (c *console) demoSay(w http.ResponseWriter, r *http.Request) {
	id, role, text := r.PostFormValue("chat"), r.PostFormValue("as"), strings.TrimSpace(r.PostFormValue("text"))
	if text == "" || utf8.RuneCountInString(text) > maxSay {
		c.fail(w, r, http.StatusBadRequest, "Write between 1 and 1,600 characters.")
		return
	}
	ch, err := c.chats.Get(r.Context(), id)
	if err != nil {
		c.failChat(w, r, err)
		return
	}
	var p chat.Party
	switch role {
	case "customer":
		p = ch.Customer
	case "rider":
		p = ch.Rider
	default:
		c.fail(w, r, http.StatusBadRequest, "Say it as the customer or the rider.")
		return
	}
	if err := c.demo.Say(r.Context(), p.Address, p.ProxyAddress, text); err != nil {
		c.fail(w, r, http.StatusConflict, "The phone could not send it: "+err.Error())
		return
	}
	http.Redirect(w, r, "/console/demo?chat="+url.QueryEscape(ch.ID), http.StatusSeeOther)
}

// demoStart begins another delivery and shows its phones.
func (c *console) demoStart(w http.ResponseWriter, r *http.Request) {
	id, err := c.demo.Start(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusConflict, "Could not start another delivery: "+err.Error())
		return
	}
	c.summary.invalidate()
	http.Redirect(w, r, "/console/demo?chat="+url.QueryEscape(id), http.StatusSeeOther)
}
