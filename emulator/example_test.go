package emulator_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"

	"github.com/optinkit/optin/emulator"
)

// A conversation with two WhatsApp participants on one business number, set up through the REST API
// as a platform would, then the customer writing to it: the rider has not written to the business
// within 24 hours, so WhatsApp refuses the free-form message (63016) until the rider does.
func Example() {
	const (
		sid, token = "AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"
		business   = "whatsapp:+15550000000"
		customer   = "whatsapp:+15550001111"
		rider      = "whatsapp:+15550002222"
	)
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	defer emu.Close(context.Background())

	ctx := context.Background()
	c := emulator.NewClient(srv.URL, sid, token)
	conv, _ := c.CreateConversation(ctx, url.Values{"FriendlyName": {"Order 1042"}})
	_, _ = c.AddParticipant(ctx, conv, customer, business)
	_, _ = c.AddParticipant(ctx, conv, rider, business)
	for _, m := range [][2]string{{customer, "Where are you?"}, {rider, "At the gate"}, {customer, "Coming!"}} {
		if _, err := c.Inbound(ctx, m[0], business, m[1]); err != nil {
			panic(err)
		}
	}
	lines, _ := c.Transcript(ctx, rider)
	for _, l := range lines {
		fmt.Println(l.Direction, l.Text, l.Status, l.ErrorCode)
	}
	// Output:
	// received Where are you? failed 63016
	// sent At the gate sent 0
	// received Coming! delivered 0
}
