package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/optinkit/optin/internal/tokens"
)

// cookieName is the console's session cookie.
const cookieName = "optin_console"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// sessions issues and checks the console's login cookies. A cookie is "expiry.mac", the mac an
// HMAC-SHA256 of the expiry keyed by the admin token that logged in: any replica with the same tokens
// accepts it, and removing a token from the configuration ends the sessions it opened.
type sessions struct {
	// logins checks the token of a login; each token is also the key of the cookies it opened.
	logins *tokens.Set
	now    func() time.Time
}

// session is a checked login.
type session struct {
	value string
	token []byte
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// issue makes the cookie value of a login with token.
func (s *sessions) issue(token []byte) string {
	exp := strconv.FormatInt(s.now().Add(sessionTTL).Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(mac(token, "session", exp))
}

// check returns the session r carries, if it is one this console issued and it has not expired.
func (s *sessions) check(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	exp, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return session{}, false
	}
	at, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.now().Unix() >= at {
		return session{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return session{}, false
	}
	var match []byte
	for _, t := range s.logins.All() {
		if key := []byte(t); hmac.Equal(got, mac(key, "session", exp)) {
			match = key
		}
	}
	if match == nil {
		return session{}, false
	}
	return session{value: c.Value, token: match}, true
}

// csrf is the token every form of the session posts back: bound to the session, so that a page of
// another site cannot know it.
func (s session) csrf() string {
	return base64.RawURLEncoding.EncodeToString(mac(s.token, "csrf", s.value))
}

// csrfOK reports whether the form carries the session's CSRF token.
func (s session) csrfOK(r *http.Request) bool {
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf()))
}

// setCookie sets (or, with an empty value, clears) the session cookie: HttpOnly, SameSite=Strict, and
// Secure when the browser reached us over TLS, directly or through a proxy that says so.
func setCookie(w http.ResponseWriter, r *http.Request, value string) {
	c := &http.Cookie{
		Name: cookieName, Value: value, Path: "/console/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(sessionTTL / time.Second)
	}
	http.SetCookie(w, c)
}
