package tokens

import (
	"slices"
	"testing"
)

func TestMatch(t *testing.T) {
	s := New([]string{"first-token-0001", "", "second-token-002"})
	if all := s.All(); s.Len() != 2 || !slices.Equal(all, []string{"first-token-0001", "second-token-002"}) {
		t.Errorf("Len %d, All %q; want the two non-empty tokens in order", s.Len(), all)
	}
	s.All()[0] = "changed by the caller"
	if s.All()[0] != "first-token-0001" {
		t.Error("All aliases the set's tokens")
	}
	for given, want := range map[string]string{
		"first-token-0001": "first-token-0001", "second-token-002": "second-token-002",
		"": "", "first-token-000": "", "first-token-00011": "", "FIRST-TOKEN-0001": "",
	} {
		got, ok := s.Match(given)
		if got != want || ok != (want != "") {
			t.Errorf("Match(%q) = %q, %v; want %q", given, got, ok, want)
		}
	}
	if _, ok := New(nil).Match(""); ok {
		t.Error("an empty set matched")
	}
}
