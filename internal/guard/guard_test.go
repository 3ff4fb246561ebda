package guard

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Redact, "redact": Redact, " Block ": Block, "OFF": Off} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParseMode("mask")
	if err == nil || err.Error() != `guard mode "mask": want redact, block or off` {
		t.Errorf("ParseMode(mask) error = %v", err)
	}
}

func TestParseAllowList(t *testing.T) {
	got, err := ParseAllowList(" +44 20 3123 4567, 0044 (0)7911-123456,,+1 (415) 555-0123 ")
	want := AllowList{"+442031234567": true, "+447911123456": true, "+14155550123": true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseAllowList = %v, %v; want %v", got, err, want)
	}
	if got, err := ParseAllowList(""); err != nil || len(got) != 0 {
		t.Errorf("ParseAllowList(\"\") = %v, %v; want empty", got, err)
	}
	_, err = ParseAllowList("+442031234567, 020 3123 4567, +1 999, support")
	if err == nil || err.Error() != `guard allow-list: not a valid international number: "020 3123 4567", "+1 999", "support"` {
		t.Errorf("ParseAllowList(bad) error = %v", err)
	}
}

func TestRegion(t *testing.T) {
	for in, want := range map[string]string{
		"whatsapp:+442031234567": "GB",
		"+14155550123":           "US",
		"sms:+5511912345678":     "BR",
		"+2348031234567":         "NG",
		"+15550100001":           "US", // no valid number: the calling code's main region
		"+447700900123":          "GB",
		"whatsapp:bob":           "",
		"":                       "",
		"+999 1234":              "",
	} {
		if got := Region(in); got != want {
			t.Errorf("Region(%q) = %q, want %q", in, got, want)
		}
	}
}

const mixed = "Hi, gate code 4411. Call 07911 123456 or mail ana@example.com, or wa.me/447911123456 (flat 12B)"

func TestCheckModes(t *testing.T) {
	found := map[Kind]int{Number: 1, Email: 1, Link: 1}
	for _, c := range []struct {
		guard Guard
		want  Result
	}{
		{Guard{}, Result{
			Body:    "Hi, gate code 4411. Call [number hidden] or mail [email hidden], or [link hidden] (flat 12B)",
			Changed: true, Action: Redact, Found: found,
		}},
		{Guard{Mode: Redact}, Result{
			Body:    "Hi, gate code 4411. Call [number hidden] or mail [email hidden], or [link hidden] (flat 12B)",
			Changed: true, Action: Redact, Found: found,
		}},
		{Guard{Mode: Block}, Result{
			Body: mixed, Blocked: true, Action: Block, Found: found,
			Reason: "Your message was not sent: it contains an e-mail address, a contact link and a phone number. " +
				"Please keep contact details out of this chat; it stays open for anything else.",
		}},
		{Guard{Mode: Off}, Result{Body: mixed}},
	} {
		if got := c.guard.Check(mixed, "GB"); !reflect.DeepEqual(got, c.want) {
			t.Errorf("mode %q:\n got %#v\nwant %#v", c.guard.Mode, got, c.want)
		}
	}
}

func TestCheckBlockOneKind(t *testing.T) {
	got := Guard{Mode: Block}.Check("ring 07911 123456", "GB")
	want := "Your message was not sent: it contains a phone number. Please keep contact details out of this chat; it stays open for anything else."
	if got.Reason != want || !got.Blocked || got.Changed || got.Body != "ring 07911 123456" {
		t.Errorf("got %#v", got)
	}
}

func TestCheckNothingFound(t *testing.T) {
	for _, mode := range []Mode{Redact, Block} {
		in := "gate code 4411, order #100234, £12.50 at 18:30\n\tSW1A 1AA  "
		got := Guard{Mode: mode}.Check(in, "GB")
		if !reflect.DeepEqual(got, Result{Body: in}) {
			t.Errorf("mode %s: got %#v", mode, got)
		}
	}
}

func TestAllowList(t *testing.T) {
	allow, err := ParseAllowList("+44 20 3123 4567")
	if err != nil {
		t.Fatal(err)
	}
	g := Guard{Allow: allow}
	in := "support: 020 3123 4567, +44 (0)20 3123-4567, wa.me/442031234567, tel:+442031234567; me: 07911 123456, wa.me/447911123456"
	want := "support: 020 3123 4567, +44 (0)20 3123-4567, wa.me/442031234567, tel:+442031234567; me: [number hidden], [link hidden]"
	got := g.Check(in, "GB")
	if got.Body != want || !reflect.DeepEqual(got.Found, map[Kind]int{Number: 1, Link: 1}) {
		t.Errorf("got %q %v\nwant %q", got.Body, got.Found, want)
	}
	if got := g.Check("call 020 3123 4567", "GB"); got.Changed || got.Found != nil {
		t.Errorf("an allowed number alone: %#v", got)
	}
}

func TestKinds(t *testing.T) {
	r := Result{Found: map[Kind]int{Number: 2, Link: 1, Email: 3}}
	if got := r.Kinds(); !reflect.DeepEqual(got, []Kind{Email, Link, Number}) {
		t.Errorf("Kinds = %v", got)
	}
	if got := (Result{}).Kinds(); len(got) != 0 {
		t.Errorf("Kinds of nothing = %v", got)
	}
}

func TestFindSpans(t *testing.T) {
	in := "a +44 7911 123456 b ana@example.com c t.me/ana"
	want := []Finding{{Number, 2, 17}, {Email, 20, 35}, {Link, 38, 46}}
	if got := Find(in, "GB", nil); !reflect.DeepEqual(got, want) {
		t.Errorf("Find = %v, want %v", got, want)
	}
}

// The rest of a message stays byte for byte: odd spacing, invalid UTF-8, emoji around a finding.
func TestRedactKeepsTheRest(t *testing.T) {
	in := "  \U0001F44B\xff\xfe call\u00a0 07911 123456\r\n\t🚪 4411  "
	want := "  \U0001F44B\xff\xfe call\u00a0 [number hidden]\r\n\t🚪 4411  "
	if got := (Guard{}).Check(in, "GB"); got.Body != want {
		t.Errorf("got %q, want %q", got.Body, want)
	}
}

// A wall of digits costs a bounded number of parses; what is left unread is hidden, so padding does
// not smuggle a number through.
func TestWallOfDigits(t *testing.T) {
	var b strings.Builder
	digits := rand.New(rand.NewPCG(26, 1)) // no stretch repeats often enough to be remembered
	for range 700 {
		fmt.Fprintf(&b, "%d ", digits.IntN(10))
	}
	wall := b.String() + "call 0151 23456789"
	f := scan(wall, "DE", nil)
	if f.parses != maxParses {
		t.Errorf("parses = %d, want the bound %d", f.parses, maxParses)
	}
	if got := (Guard{}).Check(wall, "DE").Body; !strings.HasSuffix(got, "call [number hidden]") {
		t.Errorf("the number after the wall: %q", got[len(got)-40:])
	}
	repeated := strings.Repeat("0 ", 800)
	if f := scan(repeated, "DE", nil); f.parses > 50 || len(f.out) != 0 {
		t.Errorf("a repeated wall: %d parses, %d found; want it remembered, nothing found", f.parses, len(f.out))
	}
}

// Check is called from concurrent webhook requests (run with -race).
func TestConcurrentChecks(t *testing.T) {
	want := Guard{}.Check(mixed, "GB").Body
	errs := make(chan string, 8)
	for range 8 {
		go func() {
			got := ""
			for range 20 {
				if got = (Guard{}).Check(mixed, "GB").Body; got != want {
					break
				}
			}
			errs <- got
		}()
	}
	for range 8 {
		if got := <-errs; got != want {
			t.Errorf("concurrent Check = %q, want %q", got, want)
		}
	}
}
