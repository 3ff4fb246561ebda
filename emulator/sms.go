package emulator

import (
	"net/url"
	"strings"
)

// A message on a pair no active conversation holds goes to the number's own incoming-message
// webhook (its SMS URL), as Programmable Messaging's signed request; each <Message> of the TwiML
// answer is sent back to the phone from the number.

// incomingMessage hands a phone's message to the number's SMS URL and delivers the replies.
func (e *Emulator) incomingMessage(from, to, body string, hasMedia bool, n PhoneNumber) (Message, error) {
	profile := e.profileName(from)
	e.mu.Lock()
	sid := e.newSid("SM")
	if hasMedia {
		sid = "MM" + sid[2:]
	}
	now := e.now()
	e.lastInbound[from+"|"+to] = now
	e.transcripts[from] = append(e.transcripts[from], Entry{Direction: "sent", Peer: to, Text: body, Status: "sent", MessageSid: sid, At: now})
	e.mu.Unlock()

	params := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid}, "AccountSid": {e.opts.AccountSid},
		"From": {from}, "To": {to}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {"1"},
		"SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"},
	}
	if hasMedia {
		params.Set("NumMedia", "1")
	}
	if n.MessagingServiceSid != "" {
		params.Set("MessagingServiceSid", n.MessagingServiceSid)
	}
	if channel(from) == "whatsapp" {
		params.Set("WaId", strings.TrimPrefix(normalizeNumber(from), "+"))
		params.Set("ProfileName", profile)
	}
	doc, code, _ := e.fetchTwiML("incoming-message", sid, n.SMSURL, n.SMSMethod, params)
	e.mu.Lock()
	defer e.mu.Unlock()
	if code != 0 {
		return Message{Sid: sid, Author: from, Body: body}, nil // Twilio logs the error; the phone hears nothing
	}
	replies, _ := messagesOf(doc)
	for _, text := range replies {
		e.transcripts[from] = append(e.transcripts[from], Entry{Direction: "received", Peer: to, Text: text, Status: "delivered",
			MessageSid: e.newSid("SM"), At: e.now()})
	}
	return Message{Sid: sid, Author: from, Body: body, Replies: replies}, nil
}

// profileName is the WhatsApp profile name of a phone: Phone.ProfileName, else a stand-in made of
// its number's last four digits.
func (e *Emulator) profileName(address string) string {
	e.mu.Lock()
	p := e.phones[normalizeNumber(address)]
	e.mu.Unlock()
	if p.ProfileName != "" {
		return p.ProfileName
	}
	d := digits(address)
	return "Phone " + d[max(len(d)-4, 0):]
}
