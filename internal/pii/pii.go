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

// phoneRE finds what may be a phone number in free text: an optional + and 7 to 15 digits.
var phoneRE = regexp.MustCompile(`\+?\d{7,15}`)

// Redact masks every phone number in text (an error's detail, a provider's message), so that it can
// be logged, stored or shown.
func Redact(text string) string {
	if !phoneRE.MatchString(text) {
		return text
	}
	return phoneRE.ReplaceAllStringFunc(text, Mask)
}
