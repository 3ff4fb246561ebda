package guard

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// The phone number finder. phonenumbers v1 has no FindNumbers (its PhoneNumberMatcher is a stub), so
// this file does the matcher's part: it cuts the text into chains of digit groups joined by what people
// put inside a number (spaces, dots, dashes, slashes, brackets, a "+" in front, digits spelled as
// words), and asks phonenumbers which stretches of a chain, on group boundaries, are a valid number
// for the author's region at the VALID leniency (valid, and with its national prefix where the country
// writes one: "1215182022" is not a Birmingham number to a British author, "0121 518 2022" is).
//
// What keeps instructions intact: a digit group touching a letter ("12B", "2nd", "5kg"), a clock or
// ratio ("18:30"), a thousands or decimal comma ("1,299"), a percent or currency sign is never part of
// a number; a chain after "#", "№" or a currency sign is a reference or a price; dates are not
// numbers; a line break or any other punctuation ends a chain; and shorter than 7 digits is never a
// number.

const (
	minDigits = 7   // shorter is a gate code, an order, a postcode
	maxDigits = 17  // "00" + country code + 15-digit number
	maxGap    = 3   // separator characters allowed between two groups of one number
	maxParses = 250 // no message of the table needs more than 10
)

// number is a phone number found at body[start:end].
type number struct {
	start, end int
	e164       string
}

// token is a group of digits or a spelled digit at body[start:end]; digits is its value in ASCII.
type token struct {
	start, end int
	digits     string
}

// chain is the groups that may together be one or more numbers, with the "+" written before the first.
type chain struct {
	tokens    []token
	plusAt    int  // index of a "+" before the first token, or -1
	reference bool // after "#" or a currency sign: an order number or a price
	hashed    bool // after "#" or "№": a reference when written in one group, else maybe a phone's
}

// finder keeps the state of one scan.
type finder struct {
	body, region string
	parses       int               // phonenumbers calls so far, bounded so that a wall of digits costs little
	seen         map[string]string // number tried → its E.164, "" when not a number
	out          []number
}

func findNumbers(body, region string, skip []span) []number {
	return scan(body, region, skip).out
}

func scan(body, region string, skip []span) *finder {
	f := &finder{body: body, region: region}
	c := chain{plusAt: -1}
	gap := 0 // separators since the last token (or since the "+")
	flush := func() {
		// "#1002345678" is an order; "# 415 555 0123" and "#415-555-0123", grouped like a phone's
		// number, are read as one.
		if len(c.tokens) > 0 && (!c.reference || (c.hashed && len(c.tokens) > 1)) {
			f.chain(c)
		}
		c, gap = chain{plusAt: -1}, 0
	}
	add := func(t token) {
		if len(c.tokens) > 0 && gap > maxGap {
			flush()
		}
		if len(c.tokens) == 0 {
			if c.plusAt >= 0 && gap > 1 {
				c.plusAt = -1 // a "+" far from the digits is arithmetic, not a prefix
			}
			c.reference, c.hashed = referenceBefore(body, t.start, c.plusAt)
		}
		c.tokens, gap = append(c.tokens, t), 0
	}
	k := 0 // next span to skip
	for i := 0; i < len(body); {
		if k < len(skip) && i >= skip[k].start {
			flush()
			i = max(i, skip[k].end)
			k++
			continue
		}
		limit := len(body)
		if k < len(skip) {
			limit = skip[k].start
		}
		r, size := utf8.DecodeRuneInString(body[i:])
		switch {
		case unicode.IsDigit(r):
			j, digits := digitRun(body, i, limit)
			if touches(body, i, j) {
				flush()
			} else {
				add(token{i, j, digits})
			}
			i = j
		case unicode.IsLetter(r):
			j := i
			for j < limit {
				r, n := utf8.DecodeRuneInString(body[j:])
				if !unicode.IsLetter(r) && !unicode.Is(unicode.Mn, r) {
					break
				}
				j += n
			}
			if d, ok := digitWords[strings.ToLower(body[i:j])]; ok {
				add(token{i, j, d})
			} else {
				flush()
			}
			i = j
		case r == '+':
			flush()
			c.plusAt = i
			i += size
		case separator(r):
			gap++
			i += size
		default:
			flush()
			i += size
		}
	}
	flush()
	return f
}

// separator reports whether r may stand between the groups of one phone number.
func separator(r rune) bool {
	switch r {
	case ' ', '\t', '.', '-', '/', '(', ')', '[', ']', '_', '~',
		'\u00a0', '\u2007', '\u2009', '\u202f', // no-break and thin spaces
		'\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2015', '\u2212': // dashes, minus
		return true
	}
	return false
}

// digitRun reads the digits (of any script) at body[i:], up to limit, as ASCII.
func digitRun(body string, i, limit int) (int, string) {
	var b strings.Builder
	for i < limit {
		r, n := utf8.DecodeRuneInString(body[i:])
		if !unicode.IsDigit(r) {
			break
		}
		b.WriteByte(byte('0' + digitValue(r)))
		i += n
	}
	return i, b.String()
}

// digitValue is the value of a decimal digit of any script: Unicode lays each script's digits out
// as a run starting at its zero.
func digitValue(r rune) int {
	if r >= '0' && r <= '9' {
		return int(r - '0')
	}
	zero := r
	for unicode.IsDigit(zero - 1) {
		zero--
	}
	return int(r-zero) % 10
}

// touches reports whether the digit group body[i:j] is glued to something that makes it a quantity, a
// time or an amount rather than part of a phone number: a letter ("12B", "5kg"), a clock's colon
// ("18:30"), a comma between digits ("1,299"), a percent, degree or currency sign.
func touches(body string, i, j int) bool {
	before, n := utf8.DecodeLastRuneInString(body[:i])
	if i > 0 {
		switch {
		case glued(before):
			return true
		case before == ':' || before == ',':
			if r, _ := utf8.DecodeLastRuneInString(body[:i-n]); unicode.IsDigit(r) {
				return true
			}
		}
	}
	if j < len(body) {
		after, n := utf8.DecodeRuneInString(body[j:])
		switch {
		case glued(after), after == '%', after == '°', unicode.Is(unicode.Sc, after):
			return true
		case after == ':' || after == ',':
			if r, _ := utf8.DecodeRuneInString(body[j+n:]); unicode.IsDigit(r) {
				return true
			}
		}
	}
	return false
}

// glued reports whether a letter touching a digit group makes it part of a word ("12B"). Scripts
// written without spaces (Chinese, Japanese, Thai) put a number right against the words around it.
func glued(r rune) bool {
	return unicode.IsLetter(r) && !unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

// referenceBefore reports whether the chain starting with the digits at i (or at the "+" at plusAt) is
// marked as a reference or an amount: "#100234", "№ 5", "£ 1 299", "R$ 1.299.000"; hash says the mark
// is "#" or "№", which also stands for "number" before a phone's ("cell # 415-555-0123").
func referenceBefore(body string, i, plusAt int) (ref, hash bool) {
	if plusAt >= 0 {
		i = plusAt
	}
	for skipped := 0; i > 0 && skipped < 2; skipped++ {
		r, n := utf8.DecodeLastRuneInString(body[:i])
		switch {
		case r == '#' || r == '№':
			return true, true
		case unicode.Is(unicode.Sc, r):
			return true, false
		case r == ' ' || r == '\u00a0':
			i -= n
		default:
			return false, false
		}
	}
	return false, false
}

// dateRE matches a date written with separators: 12/05/2024, 2024-05-12, 12.05.24.
var dateRE = regexp.MustCompile(`^(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}[/.-]\d{1,2}[/.-]\d{1,2})$`)

// chain finds the numbers in c: from each group, the longest stretch of groups that is a valid number;
// after a number the search goes on behind it.
func (f *finder) chain(c chain) {
	toks := c.tokens
	for i := 0; i < len(toks); {
		j, e164 := f.longest(c, i)
		if j < 0 {
			i++
			continue
		}
		start, end := toks[i].start, toks[j].end
		if i == 0 && c.plusAt >= 0 {
			start = c.plusAt
		}
		if start > 0 && (f.body[start-1] == '(' || f.body[start-1] == '[') {
			start--
		}
		if s := f.body[start:end]; end < len(f.body) && (f.body[end] == ')' || f.body[end] == ']') &&
			strings.Count(s, "(")+strings.Count(s, "[") > strings.Count(s, ")")+strings.Count(s, "]") {
			end++
		}
		f.out = append(f.out, number{start, end, e164})
		i = j + 1
	}
}

// longest returns the last group of the longest valid number that starts at group i, or -1. Once the
// parses run out, the longest stretch is returned unread (e164 ""): hidden rather than let through, so
// that padding a message with digits does not smuggle a number past the guard.
func (f *finder) longest(c chain, i int) (int, string) {
	toks := c.tokens
	total := 0
	last := i
	for ; last < len(toks) && total+len(toks[last].digits) <= maxDigits; last++ {
		total += len(toks[last].digits)
	}
	for j := last - 1; j >= i && total >= minDigits; j-- {
		digits := joinDigits(toks[i : j+1])
		total -= len(toks[j].digits)
		if dateRE.MatchString(f.body[toks[i].start:toks[j].end]) || counting(toks[i:j+1]) {
			continue
		}
		switch e164, v := f.valid(digits, i == 0 && c.plusAt >= 0); v {
		case yes:
			return j, e164
		case unread:
			return j, ""
		}
	}
	return -1, ""
}

// counting reports whether groups count up ("1 2 3 4 5 6 7 8 9 10"): a list, not a number spaced out.
func counting(toks []token) bool {
	if len(toks) < 4 {
		return false
	}
	prev := -1
	for _, t := range toks {
		n, err := strconv.Atoi(t.digits)
		if err != nil || len(t.digits) > 3 || (prev >= 0 && n != prev+1) {
			return false
		}
		prev = n
	}
	return true
}

func joinDigits(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.digits)
	}
	return b.String()
}

// verdict is what the finder makes of a stretch of digits.
type verdict int

const (
	no     verdict = iota
	yes            // a phone number
	unread         // not parsed: the bound of parses is reached
)

// valid reads digits as a phone number: international after a "+" or "00", else in the author's
// region; it returns the number in E.164. Written internationally, a number of a possible length for
// its country code counts (nobody writes "+44" before anything else, and a range the metadata does not
// know yet is still someone's phone); written nationally, it must be valid for the region.
func (f *finder) valid(digits string, plus bool) (string, verdict) {
	if plus {
		return f.parse("+"+digits, "", phonenumbers.POSSIBLE)
	}
	if f.region != "" {
		if e164, v := f.parse(digits, f.region, phonenumbers.VALID); v != no {
			return e164, v
		}
	}
	if strings.HasPrefix(digits, "00") {
		return f.parse("+"+digits[2:], "", phonenumbers.POSSIBLE)
	}
	return "", no
}

// parse asks phonenumbers, at most maxParses times per message; a stretch tried before is answered
// from memory.
func (f *finder) parse(number, region string, leniency phonenumbers.Leniency) (string, verdict) {
	key := region + number
	if e164, ok := f.seen[key]; ok {
		if e164 == "" {
			return "", no
		}
		return e164, yes
	}
	if f.parses >= maxParses {
		return "", unread
	}
	if f.seen == nil {
		f.seen = map[string]string{}
	}
	f.parses++
	e164 := ""
	if n, err := phonenumbers.ParseAndKeepRawInput(number, region); err == nil && leniency.Verify(n, number) {
		e164 = phonenumbers.Format(n, phonenumbers.E164)
	}
	f.seen[key] = e164
	if e164 == "" {
		return "", no
	}
	return e164, yes
}

// digitWords are digits spelled out, in English ("oh" for zero too), Spanish, French, Portuguese and German ("call zero
// seven seven …"). Left out because they are ordinary words too: French "sept" (September), German
// "null", "ein".
var digitWords = map[string]string{
	"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
	"cero": "0", "uno": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5", "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
	"zéro": "0", "un": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "huit": "8", "neuf": "9",
	"um": "1", "dois": "2", "três": "3", "quatro": "4", "sete": "7", "oito": "8", "nove": "9",
	"eins": "1", "zwei": "2", "drei": "3", "vier": "4", "fünf": "5", "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
}
