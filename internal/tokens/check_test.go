package tokens

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for token, want := range map[string]string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855": "",
		"7f3c9a1e5b2d4f6081a9c3e5b7d9f1a2":                                 "",
		"short":                                                            "at least 32 characters",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":                         "too easy to guess",
		"password12345678password12345678":                                 "too easy to guess",
		"passwordpasswordpassword12345678":                                 "too easy to guess",
		"abcdefghijklmnopqrstuvwxyz012345":                                 "too easy to guess",
		"correcthorsebatterystaplecorrecthorse":                            "too easy to guess",
	} {
		err := Check(token)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s refused: %v", token, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", token, err, want)
		case err != nil && strings.Contains(err.Error(), token):
			t.Errorf("the error names the token: %v", err)
		}
	}
}
