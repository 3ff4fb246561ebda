package guard

import (
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Finding is one piece of contact data: body[Start:End] is of Kind.
type Finding struct {
	Kind       Kind
	Start, End int
}

// Find returns the contact data in body, sorted and not overlapping: links first, then e-mail addresses
// outside them, then phone numbers outside both (read in region). Numbers in allow, and links that carry
// only such a number, are not findings. Text inside other web links (a map, a tracking page) is not
// searched for numbers: their digits are ids, not phone numbers. Disguises drawn with look-alike and
// invisible characters are seen through (fold.go); the offsets are body's.
func Find(body, region string, allow AllowList) []Finding {
	text, at := fold(body)
	found := find(text, region, allow)
	if at != nil {
		for i := range found {
			found[i].Start, found[i].End = at[found[i].Start], at[found[i].End]
		}
	}
	return found
}

func find(body, region string, allow AllowList) []Finding {
	var found []Finding
	var skip []span           // searched no further: findings and plain web links
	lower := lowerASCII(body) // the patterns are lower case; offsets stay those of body
	for _, s := range contactLinks(lower) {
		s.end = trimURL(body, s.start, s.end)
		if s.end <= s.start {
			continue
		}
		if !linkAllowed(body[s.start:s.end], region, allow) {
			found = append(found, Finding{Link, s.start, s.end})
		}
		skip = append(skip, s)
	}
	for _, s := range webLinks(lower) {
		s.end = trimURL(body, s.start, s.end)
		if overlaps(skip, s) {
			continue
		}
		if url := body[s.start:s.end]; phoneParamRE.MatchString(url) && !linkAllowed(url, region, allow) {
			found = append(found, Finding{Link, s.start, s.end})
		}
		skip = append(skip, s)
	}
	for _, re := range emailREs {
		for _, m := range re.find(lower) {
			s := span{m[0], m[1]}
			if !overlaps(skip, s) {
				found, skip = append(found, Finding{Email, s.start, s.end}), append(skip, s)
			}
		}
	}
	sort.Slice(skip, func(i, j int) bool { return skip[i].start < skip[j].start })
	for _, n := range findNumbers(body, region, skip) {
		if !allow[n.e164] {
			found = append(found, Finding{Number, n.start, n.end})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Start < found[j].Start })
	return found
}

type span struct{ start, end int }

// gated is a pattern run only on text holding one of its gate's words: most messages hold none, and a
// regular expression that may start anywhere is what costs most here.
type gated struct {
	re   *regexp.Regexp
	gate []string
}

func (g gated) find(lower string) [][]int {
	for _, word := range g.gate {
		if strings.Contains(lower, word) {
			return g.re.FindAllStringIndex(lower, -1)
		}
	}
	return nil
}

// lowerASCII lowers A to Z only, so that every byte stays where it was.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func overlaps(spans []span, s span) bool {
	for _, o := range spans {
		if s.start < o.end && o.start < s.end {
			return true
		}
	}
	return false
}

// contactHosts are messengers' short links: followed by a path or query, they reach a person (wa.me/…,
// api.whatsapp.com/send?phone=…, t.me/…); a bare "wa.me" in prose reaches no one. contactSchemes dial,
// text or open a chat (tel:, sms:, whatsapp:, …). The links are found from these words, not by a
// pattern that may start anywhere, which is what costs most in a long message.
var (
	contactHosts = []string{"wa.me", "wa.link", "api.whatsapp.com", "web.whatsapp.com", "chat.whatsapp.com",
		"whatsapp.com/send", "t.me", "telegram.me", "telegram.dog", "m.me", "signal.me", "signal.group", "line.me",
		"lin.ee", "invite.viber.com", "msng.link"}
	contactSchemes = []string{"tel:", "sms:", "smsto:", "mms:", "mmsto:", "callto:", "facetime:", "facetime-audio:",
		"skype:", "viber:", "whatsapp:", "tg:", "sgnl:", "mailto:"}
	webStarts = []string{"https://", "http://", "www."}
	afterHost = regexp.MustCompile(`^ ?[/?] ?[^\s<>"]+`)
	linkRest  = regexp.MustCompile(`^[^\s<>"]+`)
)

// contactLinks finds the contact links in lower (a body lowered by lowerASCII), sorted, not overlapping.
func contactLinks(lower string) []span {
	var links []span
	for _, host := range contactHosts {
		covered := 0 // an occurrence inside the last link found is part of it: skipped, so the cost stays linear
		for at := range occurrences(lower, host) {
			if at < covered {
				continue
			}
			start := at
			for _, prefix := range []string{"www.", "https://", "http://"} {
				if strings.HasSuffix(lower[:start], prefix) {
					start -= len(prefix)
				}
			}
			if m := afterHost.FindStringIndex(lower[at+len(host):]); m != nil && startsWord(lower, start) {
				links = append(links, span{start, at + len(host) + m[1]})
				covered = at + len(host) + m[1]
			}
		}
	}
	for _, scheme := range contactSchemes {
		covered := 0
		for at := range occurrences(lower, scheme) {
			if at < covered {
				continue
			}
			if m := linkRest.FindStringIndex(lower[at+len(scheme):]); m != nil && m[1] >= 3 && startsWord(lower, at) {
				links = append(links, span{at, at + len(scheme) + m[1]})
				covered = at + len(scheme) + m[1]
			}
		}
	}
	if strings.Contains(lower, "/") {
		for _, m := range hiddenDotRE.FindAllStringSubmatchIndex(lower, -1) {
			links = append(links, span{m[2], m[3]})
		}
	}
	for i, l := range links {
		links[i].end = numberGoesOn(lower, l)
	}
	return disjoint(links)
}

// numberGoesOn is the end of a link whose number goes on after a space ("wa.me/+44 7911 123456"):
// the groups that follow are taken while the link holds fewer digits than a phone number has, so that
// hiding the link does not leave most of the number in sight.
func numberGoesOn(lower string, l span) int {
	if c := lower[l.end-1]; c < '0' || c > '9' {
		return l.end
	}
	digits := 0
	for _, c := range []byte(lower[l.start:l.end]) {
		if '0' <= c && c <= '9' {
			digits++
		}
	}
	end := l.end
	for digits > 0 && digits < 10 {
		m := nextGroupRE.FindStringIndex(lower[end:])
		if m == nil {
			break
		}
		for _, c := range []byte(lower[end : end+m[1]]) {
			if '0' <= c && c <= '9' {
				digits++
			}
		}
		end += m[1]
	}
	return end
}

// nextGroupRE is a group of digits after up to three separators.
var nextGroupRE = regexp.MustCompile(`^[ .()/-]{1,3}[0-9]+`)

// hiddenDotRE is a messenger's short link with its dot disguised: "wa[.]me/…", "t (dot) me/…",
// "wa . me / …", "wa dot me/…".
var hiddenDotRE = regexp.MustCompile(`(?:^|[^\p{L}\p{N}._-])((?:wa|t|m|signal|line|lin|telegram)\s*` +
	`(?:[\[({]\s*(?:\.|dot)\s*[\])}]|\s+\.\s*|\.\s+|\s+dot\s+)\s*(?:me|link|ee|dog)\s*/\s*[^\s<>"]+)`)

// webHostRE is the start of a web link with a host name: "http://07911123456" or "www.07911123456" is a
// number dressed as a link, and its digits are searched like any others.
var webHostRE = regexp.MustCompile(`^(?:https?://)?[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}[\p{L}\p{N}-]+(?:$|[:/?#])`)

// webLinks finds any web link in lower (one with a host name), sorted, not overlapping.
func webLinks(lower string) []span {
	var links []span
	for _, prefix := range webStarts {
		covered := 0
		for at := range occurrences(lower, prefix) {
			if at < covered {
				continue
			}
			covered = at + len(prefix) + len(linkRest.FindString(lower[at+len(prefix):]))
			if webHostRE.MatchString(lower[at:covered]) {
				links = append(links, span{at, covered})
			}
		}
	}
	return disjoint(links)
}

// occurrences yields where word occurs in s.
func occurrences(s, word string) func(func(int) bool) {
	return func(yield func(int) bool) {
		for from := 0; ; {
			i := strings.Index(s[from:], word)
			if i < 0 || !yield(from+i) {
				return
			}
			from += i + len(word)
		}
	}
}

// disjoint sorts spans and keeps, of overlapping ones, the first (the longest of those starting
// together).
func disjoint(spans []span) []span {
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].end > spans[j].end
	})
	out := spans[:0]
	for _, s := range spans {
		if len(out) == 0 || s.start >= out[len(out)-1].end {
			out = append(out, s)
		}
	}
	return out
}

// phoneParamRE says a web link carries a number in its query.
var phoneParamRE = regexp.MustCompile(`(?i)[?&](?:phone|tel|telephone|mobile|msisdn|whatsapp|wa)=[+0-9%]`)

// emailREs match an e-mail address as written, with its "@" in brackets ("ana(at)example.com",
// "ana [at] mail [dot] com"), or spelled out towards a well-known mailbox provider ("ana at gmail dot
// com"; with any domain "look at example dot com" would be prose as often as an address).
var emailREs = []gated{
	{regexp.MustCompile(`(?:[\p{N}._%+-]|` + spacedLetter + `)+ ?@ ?(?:[\p{N}-]|` + spacedLetter + `)+` +
		`(?:\.(?:[\p{N}-]|` + spacedLetter + `)+)*\.` + spacedLetter + `{2,}`), []string{"@"}},
	{regexp.MustCompile(`[\p{L}\p{N}._%+-]+\s*[(\[{<]\s*(?:at|@|arroba|chez)\s*[)\]}>]\s*[\p{L}\p{N}-]+` +
		`(?:\s*(?:\.|[(\[{<]\s*(?:dot|punto|point|punkt|ponto)\s*[)\]}>])\s*[\p{L}\p{N}-]+)+`),
		[]string{"(", "[", "{", "<"}},
	{regexp.MustCompile(`\b[\p{L}\p{N}._%+-]+\s+(?:at|arroba)\s+` + `(` + providers + `)` +
		`(?:\s*\.\s*|\s+(?:dot|punto|point|punkt|ponto)\s+)[a-z]{2,}(?:(?:\s*\.\s*|\s+(?:dot|punto|point|punkt|ponto)\s+)[a-z]{2,})?\b`),
		strings.Split(providers, "|")},
}

// spacedLetter is a letter of a script written with spaces between words: in Japanese or Thai an
// address sits right against the words around it ("メールはana@example.comです"), which are not part of it.
const spacedLetter = `[^\P{L}\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]`

// providers are the mailbox providers a spelled-out address is recognised at.
const providers = "gmail|googlemail|yahoo|ymail|hotmail|outlook|icloud|aol|protonmail|proton|gmx|yandex|msn|wanadoo|laposte|libero|rediffmail|zoho"

// startsWord reports whether body[at:] starts a word: "at.me/x" does not hold the link "t.me/x".
func startsWord(body string, at int) bool {
	r, _ := utf8.DecodeLastRuneInString(body[:at])
	return at == 0 || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_')
}

// trimURL drops the sentence's punctuation that a link swallowed ("see wa.me/4477…)." ).
func trimURL(body string, start, end int) int {
	for end > start && strings.ContainsRune(`.,;:!?'")]}`, rune(body[end-1])) {
		if body[end-1] == ')' && strings.Count(body[start:end], "(") >= strings.Count(body[start:end], ")") {
			break
		}
		end--
	}
	return end
}

// linkAllowed reports whether a link carries an allowed number (the platform's own wa.me link) and no
// other contact. Messenger links write numbers internationally without "+".
func linkAllowed(link, region string, allow AllowList) bool {
	if len(allow) == 0 {
		return false
	}
	digits, plus := linkDigits(link)
	if len(digits) < 7 {
		return false
	}
	for _, try := range []struct{ number, region string }{{"+" + digits, ""}, {digits, region}} {
		if plus && try.region != "" {
			continue
		}
		if n, err := phonenumbers.Parse(try.number, try.region); err == nil && phonenumbers.IsValidNumber(n) &&
			allow[phonenumbers.Format(n, phonenumbers.E164)] {
			return true
		}
	}
	return false
}

// linkDigits is the digits of a link's number (after "phone=" or the last path segment), ASCII, and
// whether a "+" preceded them.
func linkDigits(link string) (string, bool) {
	if i := strings.LastIndex(strings.ToLower(link), "phone="); i >= 0 {
		link = link[i+len("phone="):]
	}
	link = strings.ReplaceAll(link, "%2B", "+")
	var b strings.Builder
	plus := false
	for _, r := range link {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && b.Len() == 0:
			plus = true
		case r == '&' || r == '#' || r == '?':
			return b.String(), plus
		}
	}
	return b.String(), plus
}
