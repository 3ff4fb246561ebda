package optin

import (
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Answer is what a customer's reply says to the invitation.
type Answer string

const (
	// AnswerConsent: anything that is not a refusal (the guide's behaviour).
	AnswerConsent Answer = "consent"
	// AnswerDecline: a no.
	AnswerDecline Answer = "decline"
	// AnswerOptOut: a request to stop all messages, which Meta requires businesses to honour.
	AnswerOptOut Answer = "opt_out"
)

// DefaultDeclineKeywords are refusals in English, Spanish, Portuguese, French and German.
var DefaultDeclineKeywords = []string{
	"no", "nope", "nah", "no thanks", "no thank you", "not now", "no way",
	"no gracias", "ahora no", "nao", "nao obrigado", "nao obrigada", "agora nao",
	"non", "non merci", "pas maintenant", "nein", "nein danke", "jetzt nicht",
}

// DefaultOptOutKeywords are requests to stop every message, in the same languages.
var DefaultOptOutKeywords = []string{
	"stop", "stopall", "unsubscribe", "cancel", "end", "quit",
	"baja", "parar", "detener", "cancelar", "sair", "arret", "desabonner", "desinscrire", "stopp", "abmelden", "beenden",
}

// Consent reads answers from replies: case-, accent- and punctuation-insensitive, the whole reply or
// its first word. A quick-reply button arrives as its title, so titles are keywords like any other.
type Consent struct {
	decline, optOut map[string]bool
}

// NewConsent returns a Consent with these keywords (nil for the defaults).
func NewConsent(decline, optOut []string) *Consent {
	if decline == nil {
		decline = DefaultDeclineKeywords
	}
	if optOut == nil {
		optOut = DefaultOptOutKeywords
	}
	c := &Consent{decline: map[string]bool{}, optOut: map[string]bool{}}
	for _, k := range decline {
		if k = normalize(k); k != "" {
			c.decline[k] = true
		}
	}
	for _, k := range optOut {
		if k = normalize(k); k != "" {
			c.optOut[k] = true
		}
	}
	return c
}

// Read says what reply answers. Opt-out keywords are looked at first: Meta requires them honoured.
func (c *Consent) Read(reply string) Answer {
	whole := normalize(reply)
	first, _, _ := strings.Cut(whole, " ")
	switch {
	case c.optOut[whole] || c.optOut[first]:
		return AnswerOptOut
	case c.decline[whole] || c.decline[first]:
		return AnswerDecline
	}
	return AnswerConsent
}

var stripMarks = runes.Remove(runes.In(unicode.Mn))

// normalize lowercases s, removes accents, turns punctuation and symbols into spaces and collapses them.
func normalize(s string) string {
	t, _, err := transform.String(transform.Chain(norm.NFD, stripMarks, norm.NFC), s)
	if err != nil {
		t = s
	}
	t = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return ' '
	}, t)
	return strings.Join(strings.Fields(t), " ")
}
