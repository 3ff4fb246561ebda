// Package guard finds contact data typed into a chat message (phone numbers, e-mail addresses, links
// that carry a number or a direct contact) and says what to publish instead: pure, no HTTP, no Twilio.
package guard

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Mode is what the guard does with a message that carries contact data (OPTIN_GUARD).
type Mode string

// The modes; Redact is the default.
const (
	Redact Mode = "redact" // each finding replaced by a placeholder, the rest unchanged
	Block  Mode = "block"  // the message is not published; its author is told why
	Off    Mode = "off"    // nothing is looked at, nothing changes
)

// ParseMode reads OPTIN_GUARD: redact, block or off (any case, surrounding spaces ignored); empty is
// Redact.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return Redact, nil
	case Redact, Block, Off:
		return m, nil
	}
	return "", fmt.Errorf("guard mode %q: want redact, block or off", s)
}

// Kind is a kind of contact data.
type Kind string

// The kinds, used as the metric's kind label and in the message's attributes.
const (
	Number Kind = "number"
	Email  Kind = "email"
	Link   Kind = "link"
)

// placeholders replace each finding in Redact mode.
var placeholders = map[Kind]string{
	Number: "[number hidden]",
	Email:  "[email hidden]",
	Link:   "[link hidden]",
}

// AllowList holds the numbers the platform wants shown (its support line), in E.164.
type AllowList map[string]bool

// ParseAllowList reads a comma-separated list of numbers in any format ("+44 20 7946 0000,
// +1 (415) 555-0100"); each must be written in international form (with + or 00) and be a valid
// number. An invalid entry is an error that names it. Empty entries are skipped.
func ParseAllowList(s string) (AllowList, error) {
	allow := AllowList{}
	var bad []string
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		international := entry
		if strings.HasPrefix(international, "00") {
			international = "+" + international[2:]
		}
		n, err := phonenumbers.Parse(international, "")
		if err != nil || !phonenumbers.IsValidNumber(n) {
			bad = append(bad, fmt.Sprintf("%q", entry))
			continue
		}
		allow[phonenumbers.Format(n, phonenumbers.E164)] = true
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("guard allow-list: not a valid international number: %s", strings.Join(bad, ", "))
	}
	return allow, nil
}

// Region is the ISO country (GB, US, …) of a person's address ("whatsapp:+447700900123",
// "+14155550123"), the region their locally written numbers are read in. A number valid nowhere gets
// its calling code's main region (+1 → US); an address that is not a number gets "".
func Region(address string) string {
	if _, number, ok := strings.Cut(address, ":"); ok {
		address = number
	}
	n, err := phonenumbers.Parse(address, "")
	if err != nil {
		return ""
	}
	if r := phonenumbers.GetRegionCodeForNumber(n); r != "" && r != "ZZ" {
		return r
	}
	if r := phonenumbers.GetRegionCodeForCountryCode(int(n.GetCountryCode())); r != "ZZ" {
		return r
	}
	return ""
}

// Guard checks messages by one mode and allow-list. Its zero value redacts and allows nothing.
type Guard struct {
	Mode  Mode
	Allow AllowList
}

// Result is what to publish for one message.
type Result struct {
	Body    string       // what to publish: the body with findings replaced (Redact) or as written
	Changed bool         // Body differs from what was written
	Blocked bool         // do not publish; tell the author Reason
	Reason  string       // for a blocked message: the text to tell its author
	Action  Mode         // what was done: Redact or Block when something was found, "" otherwise
	Found   map[Kind]int // findings per kind (nil when none)
}

// Kinds lists the kinds found, sorted, for the message's attributes.
func (r Result) Kinds() []Kind {
	kinds := make([]Kind, 0, len(r.Found))
	for k := range r.Found {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	return kinds
}

// Check looks at a message's body written by someone whose numbers read in region (see Region; "" when
// unknown: only international numbers are then found) and says what to publish.
func (g Guard) Check(body, region string) Result {
	res := Result{Body: body}
	if g.Mode == Off {
		return res
	}
	findings := Find(body, region, g.Allow)
	if len(findings) == 0 {
		return res
	}
	res.Found = map[Kind]int{}
	for _, f := range findings {
		res.Found[f.Kind]++
	}
	if g.Mode == Block {
		res.Blocked, res.Action, res.Reason = true, Block, reason(res.Kinds())
		return res
	}
	res.Body, res.Changed, res.Action = Redacted(body, findings), true, Redact
	return res
}

// Redacted is body with each finding (sorted, not overlapping, as Find returns them) replaced by its
// kind's placeholder.
func Redacted(body string, findings []Finding) string {
	var b strings.Builder
	b.Grow(len(body))
	at := 0
	for _, f := range findings {
		b.WriteString(body[at:f.Start])
		b.WriteString(placeholders[f.Kind])
		at = f.End
	}
	b.WriteString(body[at:])
	return b.String()
}

// reason tells the author of a blocked message what was found.
func reason(kinds []Kind) string {
	names := map[Kind]string{Number: "a phone number", Email: "an e-mail address", Link: "a contact link"}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = names[k]
	}
	what := parts[0]
	if len(parts) > 1 {
		what = strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
	return "Your message was not sent: it contains " + what +
		". Please keep contact details out of this chat; it stays open for anything else."
}
