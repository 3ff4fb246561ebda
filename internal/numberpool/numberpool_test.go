package numberpool_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/store/memory"
)

const rider = "whatsapp:+15550002222"

func number(i int) string { return fmt.Sprintf("whatsapp:+1555010000%d", i) }

func customer(i int) string { return fmt.Sprintf("whatsapp:+155500011%02d", i) }

func newPool(t *testing.T, n int) (*numberpool.Pool, *memory.Pairs) {
	var numbers []string
	for i := range n {
		numbers = append(numbers, number(i))
	}
	store := memory.NewPairs(0)
	p, err := numberpool.New("WhatsApp", numbers, store)
	if err != nil {
		t.Fatal(err)
	}
	return p, store
}

// A rider with five orders gets five numbers, each shared with that order's customer; a sixth finds
// none, and the pool says whose pair is missing; closing one order frees its number.
func TestRiderWithManyOrders(t *testing.T) {
	p, _ := newPool(t, 5)
	ctx := t.Context()
	var got []string
	for i := range 5 {
		ns, err := p.Lease(ctx, fmt.Sprint("chat-", i), []string{customer(i), rider})
		if err != nil {
			t.Fatal(err)
		}
		if ns[0] != ns[1] {
			t.Errorf("chat %d: customer on %s, rider on %s; want one number for both", i, ns[0], ns[1])
		}
		got = append(got, ns[0])
	}
	if slices.Sort(got); !slices.Equal(got, []string{number(0), number(1), number(2), number(3), number(4)}) {
		t.Errorf("numbers %v", got)
	}
	_, err := p.Lease(ctx, "chat-5", []string{customer(5), rider})
	var ex *numberpool.ExhaustedError
	if !errors.As(err, &ex) || ex.Address != rider || ex.Pool != "WhatsApp" {
		t.Fatalf("sixth order: %v", err)
	}
	usage, _ := p.Usage(ctx)
	if usage[0].InUse != 2 || usage[0].Channel != "whatsapp" {
		t.Errorf("usage %+v (the refused lease must leave nothing bound)", usage)
	}
	if err := p.Release(ctx, "chat-3"); err != nil {
		t.Fatal(err)
	}
	if ns, err := p.Lease(ctx, "chat-5", []string{customer(5), rider}); err != nil || ns[0] != number(3) {
		t.Errorf("after a release: %v %v", ns, err)
	}
}

// A customer keeps the number they used before; when no number suits both parties, each gets its own.
func TestStickyAndSplit(t *testing.T) {
	p, _ := newPool(t, 3)
	ctx := t.Context()
	other := "whatsapp:+15550003333"
	if _, err := p.Lease(ctx, "a", []string{customer(9), other}); err != nil { // number 0
		t.Fatal(err)
	}
	if ns, _ := p.Lease(ctx, "b", []string{customer(1), other}); ns[0] != number(1) {
		t.Fatalf("second lease %v", ns)
	}
	_ = p.Release(ctx, "a")
	_ = p.Release(ctx, "b")
	// Customer 1 used number 1 last: it comes first although 0 is free.
	if ns, _ := p.Lease(ctx, "c", []string{customer(1), rider}); ns[0] != number(1) || ns[1] != number(1) {
		t.Errorf("sticky %v", ns)
	}
	_ = p.Release(ctx, "c")

	// Split: on a pool of two, the rider holds number 0 and customer 1 number 1, in other chats.
	p2, _ := newPool(t, 2)
	for _, l := range []struct {
		chat    string
		parties []string
		want    string
	}{
		{"x", []string{customer(8), rider}, number(0)},
		{"w", []string{customer(7), other}, number(0)},
		{"y", []string{customer(1), other}, number(1)},
	} {
		if ns, err := p2.Lease(ctx, l.chat, l.parties); err != nil || ns[0] != l.want {
			t.Fatalf("%s: %v %v, want %s", l.chat, ns, err, l.want)
		}
	}
	ns, err := p2.Lease(ctx, "z", []string{customer(1), rider})
	if err != nil || ns[0] != number(0) || ns[1] != number(1) {
		t.Errorf("split lease %v %v: no number is free for both, so each gets its own", ns, err)
	}
}

// A pair Twilio says is bound elsewhere is blocked and the party gets the next number.
func TestReplaceBlocksThePair(t *testing.T) {
	p, _ := newPool(t, 2)
	ctx := t.Context()
	ns, _ := p.Lease(ctx, "a", []string{customer(1), rider})
	n, err := p.Replace(ctx, "a", rider, ns[1])
	if err != nil || n != number(1) {
		t.Fatalf("replace: %q %v", n, err)
	}
	if _, err := p.Replace(ctx, "a", rider, n); err == nil {
		t.Error("a pool with every pair blocked or leased found a number")
	}
	if _, err := numberpool.New("x", nil, memory.NewPairs(0)); err == nil {
		t.Error("an empty pool was accepted")
	}
}

// A chat whose customer finds no SMS number keeps its WhatsApp pairs: the two pools share one store,
// and a refused lease frees only what it took (issue 24, defect 2).
func TestRefusedLeaseKeepsTheChatsOtherPairs(t *testing.T) {
	ctx := t.Context()
	store := memory.NewPairs(0)
	wa, err := numberpool.New("WhatsApp", []string{number(0)}, store)
	if err != nil {
		t.Fatal(err)
	}
	sms, err := numberpool.New("SMS", []string{"+15550109999"}, store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wa.Lease(ctx, "chat-1", []string{customer(1), rider}); err != nil {
		t.Fatal(err)
	}
	// Another chat holds the only SMS pair of the customer's bare number.
	if _, err := sms.Lease(ctx, "chat-0", []string{"+15550001101"}); err != nil {
		t.Fatal(err)
	}
	var ex *numberpool.ExhaustedError
	if _, err := sms.Lease(ctx, "chat-1", []string{"+15550001101"}); !errors.As(err, &ex) {
		t.Fatalf("SMS lease: %v, want exhausted", err)
	}
	// Two addresses, the second refused: the first one's new pair is freed, the rest kept.
	if _, err := sms.Lease(ctx, "chat-1", []string{"+15550001102", "+15550001101"}); !errors.As(err, &ex) {
		t.Fatalf("SMS lease of two: %v, want exhausted", err)
	}
	usage, _ := wa.Usage(ctx)
	if usage[0].InUse != 2 {
		t.Errorf("WhatsApp pairs in use %d after a refused SMS lease, want the chat's 2", usage[0].InUse)
	}
	usage, _ = sms.Usage(ctx)
	if usage[0].InUse != 1 {
		t.Errorf("SMS pairs in use %d, want only chat-0's", usage[0].InUse)
	}
	if _, err := wa.Lease(ctx, "chat-2", []string{customer(2), rider}); !errors.As(err, &ex) {
		t.Errorf("the rider's pair was free again for another chat: %v", err)
	}
}
