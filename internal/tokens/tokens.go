// Package tokens checks a secret a client presents against the admin tokens: the chats API's bearer
// tokens and the console's login use the same comparison.
package tokens

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"slices"

	"github.com/trustelem/zxcvbn"
)

// Set is the configured tokens, several so that one can be rotated out while another is in use.
type Set struct {
	tokens  []string
	digests [][sha256.Size]byte
}

// New returns the set of the non-empty tokens.
func New(tokens []string) *Set {
	s := &Set{}
	for _, t := range tokens {
		if t != "" {
			s.tokens = append(s.tokens, t)
			s.digests = append(s.digests, sha256.Sum256([]byte(t)))
		}
	}
	return s
}

// All returns the tokens, in the order configured.
func (s *Set) All() []string { return slices.Clone(s.tokens) }

// Len is the number of tokens.
func (s *Set) Len() int { return len(s.tokens) }

// Match returns the token given is, if it is one. The SHA-256 digests of every token are compared in
// constant time, so the time taken says nothing of how close a guess came, nor of a token's length.
func (s *Set) Match(given string) (string, bool) {
	got := sha256.Sum256([]byte(given))
	match := -1
	for i, d := range s.digests {
		if subtle.ConstantTimeCompare(got[:], d[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return s.tokens[match], true
}

// What an admin token must have: a length, and an estimate of the guesses it takes (zxcvbn's, which
// sees repeated characters, words, keyboard runs and sequences) of at least 2^MinBits.
const (
	MinLength = 32
	MinBits   = 80
)

// Check says what is wrong with a token to be configured, without naming it.
func Check(token string) error {
	if len(token) < MinLength {
		return fmt.Errorf("each token must be at least %d characters; make one with: openssl rand -hex 32", MinLength)
	}
	if bits := math.Log2(zxcvbn.PasswordStrength(token, nil).Guesses); bits < MinBits {
		return fmt.Errorf("a token is too easy to guess (about 2^%.0f guesses: repeated characters, words, sequences); make one with: openssl rand -hex 32", bits)
	}
	return nil
}
