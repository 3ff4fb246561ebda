// Package console is the operators' web page on the admin listener: the chats, live, with their
// history and steps and an "End chat" action, the number pools, and with -demo the demo's two phones.
// It is server-rendered with html/template from embedded files, readable without JavaScript; a small
// script of its own refreshes the live parts each second. A login with an admin token opens a session
// of its own (a random id in a signed cookie); every form posts a CSRF token bound to it, and
// cross-origin posts are refused.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/tokens"
)

//go:embed web/*.html
var web embed.FS

// The stylesheet and the script are inlined in every page, allowed by their hashes in the
// Content-Security-Policy: nothing of the console, not even a static file, answers without a session.
var (
	//go:embed web/console.css
	consoleCSS string
	//go:embed web/console.js
	consoleJS string
	csp       = "default-src 'none'; script-src " + sourceHash(consoleJS) + "; style-src " + sourceHash(consoleCSS) +
		"; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// sourceHash is the CSP source expression of an inline script or style.
func sourceHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Chats is what the console needs of the chat service.
type Chats interface {
	Get(ctx context.Context, key string) (chat.Chat, error)
	List(ctx context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error)
	End(ctx context.Context, key string) (chat.Chat, error)
}

// Pools reports the number pools' load.
type Pools interface {
	Usage(ctx context.Context) ([]numberpool.Usage, error)
}

// Demo is the demo's emulated phones, shown when the service runs with -demo.
type Demo interface {
	// Start begins another delivery and returns its chat's id.
	Start(ctx context.Context) (string, error)
	// Thread is what the phone at address exchanged with the business number proxy, oldest first.
	Thread(address, proxy string) []Message
	// Say sends text from the phone at address to the business number proxy.
	Say(ctx context.Context, address, proxy, text string) error
	// Call has the phone at address call the business number proxy; the call shows in the threads.
	Call(ctx context.Context, address, proxy string) error
}

// Message is one bubble of a demo phone's thread.
type Message struct {
	// Sent: the phone wrote it; otherwise the phone received it.
	Sent bool
	Text string
	At   time.Time
	// Undelivered: WhatsApp would not deliver it (free-form text outside the 24-hour window).
	Undelivered bool
}

// Options are the console's parts; Chats, Pools and Tokens are required.
type Options struct {
	Chats  Chats
	Pools  Pools
	Tokens []string
	// Demo, when set, adds the demo's page.
	Demo Demo
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Guard slows the clients whose logins fail (shared with the API's bearer check); nil: one of its own.
	Guard *authlimit.Limiter
	// Revocations keeps the sessions logged out (shared by every replica); required.
	Revocations Revocations
}

// maxForm bounds a form's body: a token, a CSRF token and a message.
const maxForm = 16 << 10

// Prefix is where the console is served.
const Prefix = "/console/"

// New returns the console's handler, for the paths under Prefix.
func New(opts Options) (http.Handler, error) {
	switch {
	case opts.Chats == nil:
		return nil, errors.New("console: nil Chats")
	case opts.Pools == nil:
		return nil, errors.New("console: nil Pools")
	case opts.Revocations == nil:
		return nil, errors.New("console: nil Revocations")
	}
	c := &console{chats: opts.Chats, pools: opts.Pools, demo: opts.Demo, now: opts.Now, refusals: rate.NewLimiter(1, 5), guard: opts.Guard}
	if c.guard == nil {
		c.guard = authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.sessions = &sessions{logins: tokens.New(opts.Tokens), revoked: opts.Revocations, now: c.now}
	if c.sessions.logins.Len() == 0 {
		return nil, errors.New("console: it needs at least one admin token")
	}
	c.summary = &summaryCache{chats: opts.Chats, now: c.now}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}

	// Refuses cross-origin posts from browsers (Sec-Fetch-Site, Origin) before anything else; the
	// session-bound CSRF token covers browsers that send neither.
	cop := http.NewCrossOriginProtection()
	r := chi.NewRouter()
	r.Use(headers, cop.Handler)
	r.Get("/console", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Prefix, http.StatusMovedPermanently) })
	root := r
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		// chi names only some of the methods a path takes: ask the router for each.
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if root.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allowed = append(allowed, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		c.fail(w, r, http.StatusMethodNotAllowed, "This page does not take "+r.Method+".")
	})
	r.Route("/console", func(r chi.Router) {
		r.NotFound(func(w http.ResponseWriter, r *http.Request) { c.fail(w, r, http.StatusNotFound, "No such page.") })
		r.Get("/login", c.loginPage)
		r.Post("/login", c.login)
		r.Group(func(r chi.Router) {
			r.Use(c.requireSession)
			r.Get("/", c.chatsPage)
			r.Get("/chats/{id}", c.chatPage)
			r.Post("/chats/{id}/end", c.endChat)
			r.Get("/pools", c.poolsPage)
			r.Post("/logout", c.logout)
			if c.demo != nil {
				r.Get("/demo", c.demoPage)
				r.Post("/demo/say", c.demoSay)
				r.Post("/demo/call", c.demoCall)
				r.Post("/demo/start", c.demoStart)
			}
		})
	})
	return r, nil
}

type console struct {
	chats    Chats
	pools    Pools
	demo     Demo
	now      func() time.Time
	sessions *sessions
	summary  *summaryCache
	pages    map[string]*template.Template
	// refusals paces the log of refused logins: a guessing script must not flood the log.
	refusals *rate.Limiter
	guard    *authlimit.Limiter
}

// headers keeps the pages out of caches and frames and lets them run only their own script and style.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY") // frame-ancestors 'none' for browsers that predate it
		next.ServeHTTP(w, r)
	})
}

type sessionKey struct{}

// requireSession admits requests with a valid session; a page asked for without one is sent to the
// login form, anything else refused.
func (c *console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.sessions.check(r)
		switch {
		case !ok && r.Method == http.MethodGet && r.URL.Query().Get("partial") == "":
			http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		case !ok:
			c.fail(w, r, http.StatusUnauthorized, "Log in first.")
			return
		}
		if r.Method == http.MethodPost {
			if !c.parseForm(w, r) {
				return
			}
			if !s.csrfOK(r) {
				c.fail(w, r, http.StatusForbidden, "The form is stale or did not come from this console; reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", loginData{page: page{Title: "Log in"}, Next: safeNext(r.URL.Query().Get("next"))})
}

// parseForm reads a post's form, at most maxForm bytes; it answers 413 or 400 itself and says false
// when the form cannot be read.
func (c *console) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			c.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("The form is larger than %d KiB.", maxForm>>10))
			return false
		}
		c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return false
	}
	return true
}

// login opens a session for a right token, whatever failures its client made before (a colleague's
// typos, a guesser on the same address); a wrong token is 401 within the client's budget of failures
// (shared with the API's bearer check), 429 beyond it.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r) {
		return
	}
	token, ok := c.sessions.logins.Match(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if ok {
		setCookie(w, r, c.sessions.issue([]byte(token)))
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	client := c.guard.Key(r)
	wait := c.guard.Failed(client)
	if c.refusals.Allow() {
		zerolog.Ctx(r.Context()).Warn().Str("client", client).Bool("throttled", wait > 0).Msg("console login refused")
	}
	if wait > 0 {
		w.Header().Set("Retry-After", authlimit.RetryAfter(wait))
		c.fail(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins from here; try again in %s seconds.", authlimit.RetryAfter(wait)))
		return
	}
	c.render(w, r, http.StatusUnauthorized, "login", loginData{page: page{Title: "Log in"}, Next: next, Failed: true})
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	s, _ := r.Context().Value(sessionKey{}).(session)
	if err := c.sessions.revoke(r.Context(), s.value); err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("console: revoking a session")
		c.fail(w, r, http.StatusServiceUnavailable, "Could not log out everywhere; try again.")
		return
	}
	setCookie(w, r, "")
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console: its path, once cleaned of . and ..
// segments (as the browser would resolve them), must still be under Prefix.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return Prefix
	}
	clean := path.Clean(u.Path)
	if clean+"/" == Prefix {
		clean = Prefix
	}
	if !strings.HasPrefix(clean, Prefix) && clean != strings.TrimSuffix(Prefix, "/") {
		return Prefix
	}
	u.Path, u.RawPath = clean, ""
	return u.String()
}

type loginData struct {
	page
	Next   string
	Failed bool
}

// page is what every page's layout needs.
type page struct {
	Title string
	// Nav names the active section.
	Nav  string
	CSRF string
	Demo bool
	// Live is the URL the live part of the page is refreshed from; empty for none.
	Live string
}

func (c *console) page(r *http.Request, title, nav, live string) page {
	p := page{Title: title, Nav: nav, Demo: c.demo != nil, Live: live}
	if s, ok := r.Context().Value(sessionKey{}).(session); ok {
		p.CSRF = s.csrf()
	}
	return p
}

// errorData is the error page's.
type errorData struct {
	page
	Status  int
	Message string
}

func (c *console) fail(w http.ResponseWriter, r *http.Request, status int, message string) {
	if r.URL.Query().Get("partial") != "" {
		http.Error(w, message, status)
		return
	}
	c.render(w, r, status, "error", errorData{page: c.page(r, http.StatusText(status), "", ""), Status: status, Message: message})
}

// failChat answers an error of the chat service.
func (c *console) failChat(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, chat.ErrNotFound):
		c.fail(w, r, http.StatusNotFound, "No chat has this id or conversation SID.")
	case errors.Is(err, chat.ErrBusy):
		c.fail(w, r, http.StatusServiceUnavailable, "Twilio did not answer in time; try again.")
	default:
		var te *chat.TwilioError
		if errors.As(err, &te) {
			c.fail(w, r, http.StatusBadGateway, fmt.Sprintf("Twilio refused (error %d).", te.Code))
			return
		}
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("console")
		c.fail(w, r, http.StatusServiceUnavailable, "The chat store is unavailable; try again.")
	}
}

// render executes the page's template, whole, or only its live part when the page asks for it.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	t := c.pages[name]
	root := "layout"
	if r.URL.Query().Get("partial") != "" && t.Lookup("live") != nil {
		root = "live"
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, root, data); err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Str("page", name).Msg("console template")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = b.WriteTo(w)
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"mask":    pii.Mask,
		"preview": pii.Preview,
		"clock":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
		"time":    func(t time.Time) string { return t.UTC().Format("15:04:05") },
		// spaced lets a list of numbers wrap: "a,b" → "a, b".
		"spaced": func(s string) string { return strings.ReplaceAll(s, ",", ", ") },
		"join":   func(s []string) string { return strings.Join(s, ",") },
		"css":    func() template.CSS { return template.CSS(consoleCSS) },
		"js":     func() template.JS { return template.JS(consoleJS) },
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "error", "chats", "chat", "pools", "demo"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(web, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}
