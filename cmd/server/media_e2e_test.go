package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/optinkit/optin/emulator"
)

// A photo of the door that the customer sends while the rider's window is closed reaches the rider,
// with the photo, once they write: through the real server, twilio-go and the emulator's media service
// (the copy carries a copy of the media, uploaded anew: Twilio attaches a media to one message only).
func TestAHeldPhotoReachesTheRiderWithItsPhoto(t *testing.T) {
	w := newRelayWorld(t, context.Background(), nil)
	w.connect("order-1", "72h")
	photo := emulator.Attachment{ContentType: "image/jpeg", Filename: "door.jpg", Data: bytes.Repeat([]byte{0xff, 0xd8, 0x42}, 5000)}
	if _, err := w.emu.InboundMedia(customer, business, "", photo); err != nil {
		t.Fatal(err)
	}
	w.await("order-1", "the photo held for the rider", func(c map[string]any) bool { return held(c, "rider") == 1 })
	riderFrom := len(w.emu.Transcript(rider))
	w.write(rider, "On my way up")
	w.await("order-1", "the photo sent again", func(c map[string]any) bool { return held(c, "rider") == 0 })
	w.awaitReceived(rider, riderFrom, 1)
	var got []emulator.Entry
	for _, e := range w.emu.Transcript(rider)[riderFrom:] {
		if e.Direction == "received" {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Status != "delivered" || got[0].Text != "" || len(got[0].Media) != 1 {
		t.Fatalf("rider received %+v, want the photo delivered", got)
	}
	m := got[0].Media[0]
	if m.ContentType != "image/jpeg" || m.Size != int64(len(photo.Data)) {
		t.Errorf("media %+v, want the photo's type and size", m)
	}
	content, ok := w.emu.Media(m.Sid)
	if !ok || !bytes.Equal(content.Data, photo.Data) {
		t.Errorf("the rider's copy has other bytes than the customer's photo")
	}
	if ms := scrape(t, w.srv.base); ms["optin_messages_resent_total{}"] != 1 {
		t.Errorf("resent counted %v", ms["optin_messages_resent_total{}"])
	}
}
