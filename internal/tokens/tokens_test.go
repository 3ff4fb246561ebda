package tokens

import "testing"

func TestMatch(t *testing.T) {
	s := New([]string{"first-token-0001", "", "second-token-002"})
	if s.Len() != 2 {
		t.Errorf("Len %d, want 2 (the empty one left out)", s.Len())
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
