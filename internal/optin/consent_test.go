package optin

import "testing"

func TestConsentReadsReplies(t *testing.T) {
	c := NewConsent(nil, nil)
	for reply, want := range map[string]Answer{
		"Yes":                     AnswerConsent,
		"yes please, I'm at home": AnswerConsent,
		"Sí":                      AnswerConsent,
		"👍":                       AnswerConsent,
		"":                        AnswerConsent,
		"No":                      AnswerDecline,
		"NO!!":                    AnswerDecline,
		"no, thanks":              AnswerDecline,
		"No thanks.":              AnswerDecline,
		"not now":                 AnswerDecline,
		"Não":                     AnswerDecline,
		"não, obrigado":           AnswerDecline,
		"Non merci":               AnswerDecline,
		"Nein danke!":             AnswerDecline,
		"Ahora no":                AnswerDecline,
		"STOP":                    AnswerOptOut,
		"Stop.":                   AnswerOptOut,
		"unsubscribe me":          AnswerOptOut,
		"Arrêt":                   AnswerOptOut,
		"no, stop":                AnswerDecline, // the first word decides before the whole reply does
		"stop, no":                AnswerOptOut,
		"Nothing to say":          AnswerConsent, // "no" is a whole word, not a prefix
		"nobody is home":          AnswerConsent,
	} {
		if got := c.Read(reply); got != want {
			t.Errorf("Read(%q) = %s, want %s", reply, got, want)
		}
	}
	custom := NewConsent([]string{"Não, valeu"}, []string{"SAIR"})
	if custom.Read("nao valeu") != AnswerDecline || custom.Read("Sair!") != AnswerOptOut || custom.Read("no") != AnswerConsent {
		t.Error("configured keywords not used")
	}
}
