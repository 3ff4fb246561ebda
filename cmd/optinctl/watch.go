package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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

// watch prints the newest chats' state changes as they happen until ctx ends (Ctrl-C): first each
// chat as it stands, then every transition its history gains, in order.
func (c *client) watch(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "only chats in this state")
	every := fs.Duration("every", time.Second, "how often to look")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *every < 100*time.Millisecond {
		return errors.New("-every: at least 100ms")
	}
	q := url.Values{"limit": {"200"}}
	if *state != "" {
		q.Set("state", *state)
	}
	seen := map[string]int{} // chat id → history entries printed
	enc := json.NewEncoder(c.stdout)
	for {
		raw, err := c.do(ctx, http.MethodGet, "/v1/chats?"+q.Encode(), nil)
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
		for i := len(page.Chats) - 1; i >= 0; i-- { // oldest first
			ch := page.Chats[i]
			n, known := seen[ch.ID]
			if !known {
				n = max(len(ch.History)-1, 0) // a chat first seen: where it stands
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
		case <-time.After(*every):
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
