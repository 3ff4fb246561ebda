package emulator

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"mime"
	"net/url"
	"strconv"
	"strings"
)

// TwiML: the XML a voice or messaging webhook answers with, and how the emulator fetches it.

// Twilio's error codes for TwiML it could not get or read.
const (
	codeHTTPRetrieval  = 11200 // the URL did not answer, or answered an error status
	codeParse          = 12100 // the document is not well-formed TwiML
	codeUnknownVerb    = 12200 // a verb or noun Twilio does not know (a warning: it is skipped)
	codeContentType    = 12300 // the answer's Content-Type is not one TwiML comes in
	codeCallerID       = 13214 // a Dial's callerId is not a number of the account
	maxRedirects       = 10
	defaultDialTimeout = 30
	defaultTimeLimit   = 4 * 60 * 60 // Twilio's cap on a call: 4 hours
)

// twimlNode is one element of a TwiML document.
type twimlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr  `xml:",any,attr"`
	Text     string      `xml:",chardata"`
	Children []twimlNode `xml:",any"`
}

func (n twimlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n twimlNode) text() string { return strings.TrimSpace(n.Text) }

var errNotResponse = errors.New("the root element is not <Response>")

// parseTwiML reads a TwiML document: a <Response> root, whatever its children.
func parseTwiML(body []byte) (twimlNode, error) {
	var root twimlNode
	dec := xml.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&root); err != nil {
		return twimlNode{}, err
	}
	if root.XMLName.Local != "Response" {
		return twimlNode{}, errNotResponse
	}
	return root, nil
}

// twimlContentType reports whether an answer's Content-Type is one Twilio reads TwiML from.
func twimlContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "text/xml" || mt == "application/xml" || mt == "text/html")
}

// fetchTwiML asks target for TwiML as Twilio does, records the request as a webhook call of kind
// event, and returns the document, or Twilio's error code when it got none.
func (e *Emulator) fetchTwiML(event, messageSid, target, method string, params url.Values) (twimlNode, int, string) {
	doc, code, msg, _ := e.fetchTwiMLToken(event, messageSid, target, method, params, randomToken())
	return doc, code, msg
}

// fetchTwiMLToken is fetchTwiML with a given idempotency token (a retry repeats the first's).
func (e *Emulator) fetchTwiMLToken(event, messageSid, target, method string, params url.Values, token string) (twimlNode, int, string, WebhookCall) {
	a := e.request(target, method, params, token)
	code, msg := 0, ""
	var doc twimlNode
	switch {
	case a.Err != "":
		code, msg = codeHTTPRetrieval, a.Err
	case a.Status < 200 || a.Status > 299:
		code, msg = codeHTTPRetrieval, "the URL answered HTTP "+strconv.Itoa(a.Status)
	case !twimlContentType(a.ContentType):
		code, msg = codeContentType, "the answer's Content-Type is not TwiML's: "+strconv.Quote(a.ContentType)
	default:
		var err error
		if doc, err = parseTwiML(a.Body); err != nil {
			code, msg = codeParse, "the answer is not TwiML: "+err.Error()
		}
	}
	call := WebhookCall{Method: strings.ToUpper(cmp.Or(method, "POST")), URL: a.URL, EventType: event, MessageSid: messageSid, Status: a.Status, Error: a.Err}
	if call.Error == "" && code != 0 {
		call.Error = msg
	}
	e.mu.Lock()
	e.calls = append(e.calls, call)
	e.mu.Unlock()
	return doc, code, msg, call
}

// resolve makes a TwiML URL absolute against the document it came in, as Twilio does.
func resolve(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return b.ResolveReference(r).String()
}

// messagesOf reads the replies of a messaging TwiML answer: each <Message>, its text or its <Body>.
func messagesOf(doc twimlNode) (replies []string, warnings []string) {
	for _, v := range doc.Children {
		if v.XMLName.Local != "Message" {
			warnings = append(warnings, "warning 12200: <"+v.XMLName.Local+"> skipped")
			continue
		}
		text := v.text()
		for _, c := range v.Children {
			if c.XMLName.Local == "Body" {
				text = c.text()
			}
		}
		if text != "" {
			replies = append(replies, text)
		}
	}
	return replies, warnings
}
