// The client of the chats API: the options every command takes, one call, and what a refusal or an
// unreachable service is said to be.

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// client is one configured connection to the API.
type client struct {
	base, token string
	json        bool
	http        *http.Client
	stdout      io.Writer
}

// options are the flags every command takes, before the command or after it (and after its id).
type options struct {
	base, token, output string
	asJSON              bool
}

// register adds the options to a command's flags, their values as given so far being the defaults.
func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.base, "url", o.base, "the service's base URL (OPTIN_URL)")
	fs.Var(secret{&o.token}, "token", "one of the service's admin tokens (OPTIN_ADMIN_TOKEN, or the first of OPTIN_ADMIN_TOKENS)")
	fs.BoolVar(&o.asJSON, "json", o.asJSON, "print the API's JSON instead of a table (same as -o json)")
	fs.StringVar(&o.output, "o", o.output, "output: table or json")
}

// secret is a flag's string that help never prints as a default: a token taken from the environment
// stays off the screen (and out of a CI log that runs -h).
type secret struct{ v *string }

func (s secret) String() string { return "" }

func (s secret) Set(v string) error {
	*s.v = v
	return nil
}

// client checks the options and makes the client they describe.
func (o *options) client(stdout io.Writer) (*client, error) {
	if o.output != "table" && o.output != "json" {
		return nil, fmt.Errorf("-o %s: want table or json", o.output)
	}
	base := strings.TrimSuffix(o.base, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-url (or OPTIN_URL) %q is not a URL such as %s", o.base, defaultURL)
	}
	return &client{base: base, token: o.token, json: o.asJSON || o.output == "json",
		http: &http.Client{Timeout: requestTimeout}, stdout: stdout}, nil
}

// requestTimeout bounds one call to the API.
const requestTimeout = 30 * time.Second

// do sends one request and returns the answer's body; an answer outside 2xx becomes an error that says
// what the problem was.
func (c *client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	raw, _, err := c.send(ctx, method, path, body)
	return raw, err
}

// send is do, with the answer's header.
func (c *client) send(ctx context.Context, method, path string, body []byte) ([]byte, http.Header, error) {
	if c.token == "" {
		return nil, nil, errors.New("an admin token is needed: -token, or OPTIN_ADMIN_TOKEN (or the server's OPTIN_ADMIN_TOKENS)")
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("could not reach the service at %s: %s; is it running, and is -url (OPTIN_URL) right?", c.base, whyUnreachable(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("the service at %s stopped answering: %s", c.base, whyUnreachable(err))
	}
	if resp.StatusCode < 300 {
		return raw, resp.Header, nil
	}
	return nil, nil, refusal(method, path, resp, raw)
}

// whyUnreachable says in plain words why a call got no answer.
func whyUnreachable(err error) string {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badCert *tls.CertificateVerificationError
	var notTLS tls.RecordHeaderError
	switch {
	case errors.As(err, &dns):
		return "its host name " + dns.Name + " could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing is listening there (connection refused)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before an answer came"
	case errors.As(err, &unknownCA), errors.As(err, &badCert):
		return "its TLS certificate is not trusted here"
	case errors.As(err, &notTLS):
		return "it does not speak HTTPS there (try http://)"
	case os.IsTimeout(err):
		return fmt.Sprintf("no answer within %s", requestTimeout)
	}
	return "the connection failed"
}

// refusal is the error an answer outside 2xx makes: its problem's title and detail, each field at
// fault, Twilio's code, when to repeat.
func refusal(method, path string, resp *http.Response, raw []byte) error {
	var p struct {
		Title, Detail string
		TwilioCode    int `json:"twilio_code"`
		Errors        []struct{ Field, Message string }
	}
	if json.Unmarshal(raw, &p) != nil || p.Title == "" {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	msg := fmt.Sprintf("%d %s", resp.StatusCode, p.Title)
	if p.Detail != "" && len(p.Errors) == 0 {
		msg += ": " + p.Detail
	}
	if p.TwilioCode != 0 {
		msg += fmt.Sprintf(" (Twilio error %d)", p.TwilioCode)
	}
	for _, e := range p.Errors {
		msg += fmt.Sprintf("\n  %s: %s", e.Field, e.Message)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		msg += fmt.Sprintf(" (repeat the same command in %ss)", ra)
	}
	return errors.New(msg)
}

func writeRaw(w io.Writer, raw []byte) error {
	_, err := w.Write(append(bytes.TrimSpace(raw), '\n'))
	return err
}
