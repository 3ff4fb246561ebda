package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/optinkit/optin/internal/tokens"
	"github.com/rs/zerolog"
)

// cookieName is the console's session cookie.
const cookieName = "optin_console"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// Revocations remembers the sessions logged out before they expired, for every replica: a saved cookie
// must not outlive its logout. Keys are digests of cookies, never cookies.
type Revocations interface {
	// Revoke records key as logged out until its session would have expired.
	Revoke(ctx context.Context, key string, until time.Time) error
	// Revoked reports whether key was logged out.
	Revoked(ctx context.Context, key string) (bool, error)
}

// sessions issues and checks the console's login cookies. A cookie is "expiry.id.mac": id is random,
// so that each login is a session of its own (logging one out leaves the others), and mac is an
// HMAC-SHA256 of expiry and id keyed by the admin token that logged in: any replica with the same
// tokens accepts it, and removing a token from the configuration ends the sessions it opened. Logging
// out revokes the cookie until its expiry.
type sessions struct {
	// logins checks the token of a login; each token is also the key of the cookies it opened.
	logins  *tokens.Set
	revoked Revocations
	now     func() time.Time
}

// revocationKey is what Revocations keep of a cookie: its digest.
func revocationKey(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// revoke logs the session out on every replica.
func (s *sessions) revoke(ctx context.Context, value string) error {
	exp, _, _ := strings.Cut(value, ".")
	at, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return nil // not a cookie this console issued: nothing to revoke
	}
	return s.revoked.Revoke(ctx, revocationKey(value), time.Unix(at, 0))
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

// issue makes the cookie value of a new login with token: a session of its own, with 128 random bits
// for its id.
func (s *sessions) issue(token []byte) string {
	exp := strconv.FormatInt(s.now().Add(sessionTTL).Unix(), 10)
	id := rand.Text()
	return exp + "." + id + "." + base64.RawURLEncoding.EncodeToString(mac(token, "session", exp, id))
}

// check returns the session r carries, if it is one this console issued and it has not expired.
func (s *sessions) check(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	exp, rest, _ := strings.Cut(c.Value, ".")
	id, sig, ok := strings.Cut(rest, ".")
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
		if key := []byte(t); hmac.Equal(got, mac(key, "session", exp, id)) {
			match = key
		}
	}
	if match == nil {
		return session{}, false
	}
	// A store that cannot say counts as logged out: the console fails closed.
	if revoked, err := s.revoked.Revoked(r.Context(), revocationKey(c.Value)); err != nil || revoked {
		if err != nil {
			zerolog.Ctx(r.Context()).Error().Err(err).Msg("console: reading session revocations")
		}
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
