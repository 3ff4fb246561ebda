package guard

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

// body1600 is a 1,600-character chat message: delivery instructions in several languages with
// numbers that are contact data and numbers that are not.
var body1600 = func() string {
	parts := []string{
		"Hi! I'm at the back gate, code 4411, flat 12B on the 3rd floor. ",
		"If you get lost call me on 07911 123456 or +44 20 3123 4567. ",
		"Order #100234 is 2 bags and a drink, total £12.50, paid. ",
		"Llámame al 612 34 56 78 si no encuentras el portal 5. ",
		"Livraison entre 18h30 et 19h, code 1234A, 75008 Paris. ",
		"My e-mail is ana.silva@example.com, or wa.me/447911123456. ",
		"Postcode SW1A 1AA, 12/05/2024 at 18:30, 1,299.00 items. ",
		"Bitte klingeln bei Müller, 2. OG, Tel 0151 23456789. ",
	}
	var b strings.Builder
	for i := 0; b.Len() < 1600; i++ {
		b.WriteString(parts[i%len(parts)])
	}
	return b.String()[:1600]
}()

func BenchmarkCheck1600(b *testing.B) {
	g := Guard{}
	b.ReportAllocs()
	b.SetBytes(int64(len(body1600)))
	for b.Loop() {
		g.Check(body1600, "GB")
	}
}

// wall1600 is the worst case found: 1,600 characters of spaced random digits, which the finder tries
// as numbers up to its bound of parses.
var wall1600 = func() string {
	var b strings.Builder
	digits := rand.New(rand.NewPCG(1600, 1))
	for b.Len() < 1600 {
		b.WriteByte(byte('0' + digits.IntN(10)))
		b.WriteByte(' ')
	}
	return b.String()
}()

func BenchmarkCheck1600Digits(b *testing.B) {
	body := wall1600
	g := Guard{}
	b.ReportAllocs()
	for b.Loop() {
		g.Check(body, "DE")
	}
}

// TestCostPerMessage prints the spread of the cost of one 1,600-character message over many runs
// (a measurement, not an assertion: speed targets live in benchmarks).
func TestCostPerMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	for _, c := range []struct{ name, body, region string }{
		{"mixed", body1600, "GB"},
		{"digits", wall1600, "DE"},
	} {
		const runs = 2000
		took := make([]time.Duration, runs)
		for i := range took {
			start := time.Now()
			Guard{}.Check(c.body, c.region)
			took[i] = time.Since(start)
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		t.Logf("%s (%d chars, %d runs): p50 %v, p99 %v, max %v", c.name, len(c.body), runs,
			took[runs/2], took[runs*99/100], took[runs-1])
	}
}

// BenchmarkCheckRepeatedLinks is a body as large as a webhook may be (64 KB) of one link's start over
// and over ("tel:tel:…"): each occurrence inside the link found before is skipped, so the cost is
// linear (it read the rest of the body from each one: 7 s for this body, past Twilio's 5 s).
func BenchmarkCheckRepeatedLinks(b *testing.B) {
	for _, start := range []string{"tel:", "wa.me/", "https://"} {
		body := strings.Repeat(start, 64<<10/len(start))
		b.Run(strings.Trim(start, ":/."), func(b *testing.B) {
			for b.Loop() {
				Guard{}.Check(body, "GB")
			}
		})
	}
}
