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
// searched for numbers: their digits are ids, not phone numbers.
func Find(body, region string, allow AllowList) []Finding {
	var found []Finding
	var skip []span // searched no further: findings and plain web links
	for _, m := range contactLinkRE.FindAllStringIndex(body, -1) {
		s := span{m[0], trimURL(body, m[0], m[1])}
		if !startsWord(body, s.start) || s.end <= s.start || linkAllowed(body[s.start:s.end], region, allow) {
			continue
		}
		found, skip = append(found, Finding{Link, s.start, s.end}), append(skip, s)
	}
	for _, m := range webLinkRE.FindAllStringIndex(body, -1) {
		s := span{m[0], trimURL(body, m[0], m[1])}
		if overlaps(skip, s) {
			continue
		}
		if url := body[s.start:s.end]; phoneParamRE.MatchString(url) && !linkAllowed(url, region, allow) {
			found = append(found, Finding{Link, s.start, s.end})
		}
		skip = append(skip, s)
	}
	for _, re := range emailREs {
		for _, m := range re.FindAllStringIndex(body, -1) {
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

func overlaps(spans []span, s span) bool {
	for _, o := range spans {
		if s.start < o.end && o.start < s.end {
			return true
		}
	}
	return false
}

// contactLinkRE matches links that reach a person directly: a scheme that dials, texts or opens a chat
// (tel:, sms:, whatsapp:, …) with something after it, or a messenger's short link with a path or query
// (wa.me/…, api.whatsapp.com/send?phone=…, t.me/…). A bare "wa.me" in prose is not a link to anyone.
var contactLinkRE = regexp.MustCompile(`(?i)` +
	`(?:(?:tel|sms|smsto|mms|mmsto|callto|facetime|facetime-audio|skype|viber|whatsapp|tg|sgnl|mailto):[^\s<>"]{3,}` +
	`|(?:https?://)?(?:www\.)?(?:wa\.me|wa\.link|(?:api|web|chat)\.whatsapp\.com|whatsapp\.com/send` +
	`|t\.me|telegram\.me|telegram\.dog|m\.me|signal\.me|signal\.group|line\.me|lin\.ee|invite\.viber\.com|msng\.link)` +
	` ?[/?] ?[^\s<>"]+)`)

// webLinkRE matches any other web link; phoneParamRE says it carries a number in its query.
var (
	webLinkRE    = regexp.MustCompile(`(?i)(?:https?://|www\.)[^\s<>"]+`)
	phoneParamRE = regexp.MustCompile(`(?i)[?&](?:phone|tel|telephone|mobile|msisdn|whatsapp|wa)=[+0-9%]`)
)

// emailREs match an e-mail address as written, with its "@" in brackets ("ana(at)example.com",
// "ana [at] mail [dot] com"), or spelled out towards a well-known mailbox provider ("ana at gmail dot
// com"; with any domain "look at example dot com" would be prose as often as an address).
var emailREs = []*regexp.Regexp{
	regexp.MustCompile(`[\p{L}\p{N}._%+-]+ ?@ ?[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}`),
	regexp.MustCompile(`(?i)[\p{L}\p{N}._%+-]+\s*[(\[{<]\s*(?:at|@|arroba|chez)\s*[)\]}>]\s*[\p{L}\p{N}-]+` +
		`(?:\s*(?:\.|[(\[{<]\s*(?:dot|punto|point|punkt|ponto)\s*[)\]}>])\s*[\p{L}\p{N}-]+)+`),
	regexp.MustCompile(`(?i)\b[\p{L}\p{N}._%+-]+\s+(?:at|arroba)\s+` +
		`(?:gmail|googlemail|yahoo|ymail|hotmail|outlook|icloud|aol|protonmail|proton|gmx|yandex|msn|wanadoo|laposte|libero|rediffmail|zoho)` +
		`(?:\s*\.\s*|\s+(?:dot|punto|point|punkt|ponto)\s+)[a-z]{2,}(?:(?:\s*\.\s*|\s+(?:dot|punto|point|punkt|ponto)\s+)[a-z]{2,})?\b`),
}

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
