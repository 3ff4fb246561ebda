// Package pii keeps personal data out of what people read: a phone number is shown masked wherever an
// operator or a log sees it (the console, errors, log lines).
package pii

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Mask hides the middle of a person's address: whatsapp:+15550100001 → whatsapp:+1555•••0001.
func Mask(address string) string {
	channel, number, ok := strings.Cut(address, ":")
	if !ok {
		channel, number = "", address
	} else {
		channel += ":"
	}
	if utf8.RuneCountInString(number) < 9 {
		return channel + "•••" + number[max(len(number)-2, 0):]
	}
	return channel + number[:5] + "•••" + number[len(number)-4:]
}

// phoneRE finds what may be a phone number in free text: an optional + and a run of 7 to 15 digits
// standing alone (not inside a SID such as CH0123…, nor a longer run).
var phoneRE = regexp.MustCompile(`\+?\b\d{7,15}\b`)

// Redact masks every phone number in text (an error's detail, a provider's message), so that it can
// be logged, stored or shown.
func Redact(text string) string {
	if !phoneRE.MatchString(text) {
		return text
	}
	return phoneRE.ReplaceAllStringFunc(text, Mask)
}

// RedactError is err with every phone number in its text masked; errors.Is and errors.As still see err.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}

type redactedError struct{ err error }

func (e redactedError) Error() string { return Redact(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

// PreviewLength is how many characters of a message Preview shows.
const PreviewLength = 4

// Preview shows a message's first few characters and hides the rest: enough for an operator to tell
// messages apart, not to read them.
func Preview(body string) string {
	if utf8.RuneCountInString(body) <= PreviewLength {
		return strings.Repeat("•", utf8.RuneCountInString(body))
	}
	n := 0
	for i := range body {
		if n == PreviewLength {
			return body[:i] + "…"
		}
		n++
	}
	return body
}
