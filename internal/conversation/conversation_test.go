package conversation

import (
	"errors"
	"testing"
)

const (
	conv = "CH00000000000000000000000000000001"
	msg  = "IM00000000000000000000000000000001"
)

func TestValidateRefusesMalformedSids(t *testing.T) {
	for name, ev := range map[string]Event{
		"added without conversation":        {Type: EventMessageAdded, MessageSid: msg},
		"added without message":             {Type: EventMessageAdded, ConversationSid: conv},
		"query in conversation sid":         {Type: EventMessageAdded, ConversationSid: "CHx?y=1#z", MessageSid: msg},
		"short conversation sid":            {Type: EventMessageAdded, ConversationSid: "CH1", MessageSid: msg},
		"wrong prefix":                      {Type: EventMessageAdded, ConversationSid: "MB00000000000000000000000000000001", MessageSid: msg},
		"json in conversation sid":          {Type: EventMessageAdded, ConversationSid: `{"a":"CH00000000000000000000000000000001"}`, MessageSid: msg},
		"non-hex message sid":               {Type: EventMessageAdded, ConversationSid: conv, MessageSid: "IM0000000000000000000000000000000g"},
		"path in message sid":               {Type: EventMessageAdded, ConversationSid: conv, MessageSid: "IM00000000000000000000000000000001/.."},
		"state without conversation":        {Type: EventStateUpdated},
		"delivery with a malformed message": {Type: EventDeliveryUpdated, ConversationSid: conv, MessageSid: "IM1"},
	} {
		if err := ev.Validate(); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: Validate = %v, want ErrInvalidEvent", name, err)
		}
	}
	for name, ev := range map[string]Event{
		"added":            {Type: EventMessageAdded, ConversationSid: conv, MessageSid: "IM0123456789abcdefABCDEF0123456789"},
		"state":            {Type: EventStateUpdated, ConversationSid: conv},
		"delivery":         {Type: EventDeliveryUpdated, ConversationSid: conv, MessageSid: msg},
		"other event type": {Type: "onParticipantAdded"},
	} {
		if err := ev.Validate(); err != nil {
			t.Errorf("%s: valid event refused: %v", name, err)
		}
	}
}

func TestIsSid(t *testing.T) {
	for _, tt := range []struct {
		prefix, s string
		want      bool
	}{
		{"CH", conv, true},
		{"CH", "CH0123456789abcdefABCDEF0123456789", true},
		{"IM", conv, false},
		{"CH", conv + "0", false},
		{"CH", conv[:33], false},
		{"CH", "CH0000000000000000000000000000000-", false},
		{"CH", "", false},
	} {
		if got := IsSid(tt.prefix, tt.s); got != tt.want {
			t.Errorf("IsSid(%q, %q) = %v, want %v", tt.prefix, tt.s, got, tt.want)
		}
	}
}
