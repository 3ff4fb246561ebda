package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// change is one state change watch prints.
type change struct {
	ID     string     `json:"id"`
	From   chat.State `json:"from,omitempty"`
	To     chat.State `json:"to"`
	Reason string     `json:"reason,omitempty"`
	At     time.Time  `json:"at"`
}

// watchFlags declares watch's flags on fs and returns what watch does with them.
func watchFlags(ctx context.Context, fs *flag.FlagSet) func(*client, []string) error {
	state := fs.String("state", "", "only chats in this state")
	every := fs.Duration("every", time.Second, "how often to look")
	return func(c *client, _ []string) error {
		if *every < 100*time.Millisecond {
			return errors.New("-every: at least 100ms")
		}
		return c.watch(ctx, *state, *every)
	}
}

// watch prints the newest chats' state changes from now on, as they happen, until ctx ends (Ctrl-C):
// the first look only learns where each chat stands; every transition after it is printed, in order.
func (c *client) watch(ctx context.Context, state string, every time.Duration) error {
	q := url.Values{"limit": {"200"}}
	if state != "" {
		q.Set("state", state)
	}
	seen := map[string]int{} // chat id → history entries already there or printed
	// since: a chat first seen after the first look has its transitions after since printed (it was
	// started, or entered -state, while watching). The server's clock, not this machine's.
	var since time.Time
	enc := json.NewEncoder(c.stdout)
	for first := true; ; first = false {
		raw, header, err := c.send(ctx, http.MethodGet, "/v1/chats?"+q.Encode(), nil)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		var page struct {
			Chats []chat.View `json:"chats"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		if first {
			since, _ = http.ParseTime(header.Get("Date"))
			for _, ch := range page.Chats {
				seen[ch.ID] = len(ch.History)
				if n := len(ch.History); n > 0 && ch.History[n-1].At.After(since) {
					since = ch.History[n-1].At
				}
			}
		}
		for i := len(page.Chats) - 1; i >= 0; i-- { // oldest first
			ch := page.Chats[i]
			n, known := seen[ch.ID]
			if !known {
				for n < len(ch.History) && !ch.History[n].At.After(since) {
					n++
				}
			}
			for j := n; j < len(ch.History); j++ {
				ev := change{ID: ch.ID, To: ch.History[j].State, At: ch.History[j].At}
				if j > 0 {
					ev.From = ch.History[j-1].State
				}
				if j == len(ch.History)-1 && ch.Reason != nil {
					ev.Reason = *ch.Reason
				}
				if c.json {
					_ = enc.Encode(ev)
				} else {
					fmt.Fprintln(c.stdout, changeText(ev))
				}
			}
			seen[ch.ID] = len(ch.History)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func changeText(ev change) string {
	s := ev.At.Local().Format("15:04:05") + "  " + ev.ID + "  "
	if ev.From != "" {
		s += string(ev.From) + " → "
	}
	s += string(ev.To)
	if ev.Reason != "" {
		s += " (" + ev.Reason + ")"
	}
	return s
}
