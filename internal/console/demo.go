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

// demoParty is the chat and the party a demo phone's form names; false when it answered the failure.
func (c *console) demoParty(w http.ResponseWriter, r *http.Request) (chat.Chat, chat.Party, bool) {
	ch, err := c.chats.Get(r.Context(), r.PostFormValue("chat"))
	if err != nil {
		c.failChat(w, r, err)
		return ch, chat.Party{}, false
	}
	switch r.PostFormValue("as") {
	case "customer":
		return ch, ch.Customer, true
	case "rider":
		return ch, ch.Rider, true
	}
	c.fail(w, r, http.StatusBadRequest, "Act as the customer or the rider.")
	return ch, chat.Party{}, false
}

// demoSay sends a phone's text box: the chat's party writes to its business number.
func (c *console) demoSay(w http.ResponseWriter, r *http.Request) {
	text := strings.TrimSpace(r.PostFormValue("text"))
	if text == "" || utf8.RuneCountInString(text) > maxSay {
		c.fail(w, r, http.StatusBadRequest, "Write between 1 and 1,600 characters.")
		return
	}
	ch, p, ok := c.demoParty(w, r)
	if !ok {
		return
	}
	if err := c.demo.Say(r.Context(), p.Address, p.ProxyAddress, text); err != nil {
		c.fail(w, r, http.StatusConflict, "The phone could not send it: "+err.Error())
		return
	}
	http.Redirect(w, r, "/console/demo?chat="+url.QueryEscape(ch.ID), http.StatusSeeOther)
}

// demoCall has a phone call the business number it knows the chat by.
func (c *console) demoCall(w http.ResponseWriter, r *http.Request) {
	ch, p, ok := c.demoParty(w, r)
	if !ok {
		return
	}
	if err := c.demo.Call(r.Context(), p.Address, p.ProxyAddress); err != nil {
		c.fail(w, r, http.StatusConflict, "The phone could not call: "+err.Error())
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
