package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// Help never prints the admin token it found in the environment, on any command; -token still sets it.
func TestHelpHidesTheToken(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef-from-the-env"
	env := func(k string) string {
		if k == "OPTIN_ADMIN_TOKEN" {
			return token
		}
		return ""
	}
	for _, args := range [][]string{{"-h"}, {"start", "-h"}, {"get", "-h"}, {"list", "-h"}, {"end", "-h"}, {"watch", "-h"}, {"doctor", "-h"}} {
		var out, errOut bytes.Buffer
		_ = run(t.Context(), append([]string{"optinctl"}, args...), env, strings.NewReader(""), &out, &errOut)
		if text := out.String() + errOut.String(); strings.Contains(text, token) || strings.Contains(text, token[:16]) {
			t.Errorf("%v printed the admin token: %q", args, text)
		}
	}
	var o options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.register(fs)
	if err := fs.Parse([]string{"-token", "given"}); err != nil || o.token != "given" {
		t.Errorf("-token given: %q %v", o.token, err)
	}
}
