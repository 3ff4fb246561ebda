package numberpool

import (
	"context"
	"strings"
)

// PairIndex finds the chat that last leased a business number to a person, both read as bare E.164
// whatever their channel: a call from +1555… to +1444… is about the chat that leased whatsapp:+1444…
// to whatsapp:+1555… (or the SMS pair, if that was leased later). It answers chat.PairIndex.
type PairIndex interface {
	// ChatOf returns the id of the chat that last took the pair (number, address), "" when none did
	// within the retention. A release does not forget it: a call to a chat just ended hears that it
	// ended.
	ChatOf(ctx context.Context, number, address string) (string, error)
}

// IndexedStore is a Store that also records, on every Take, each pair's chat for its PairIndex, in
// the same atomic step and for the retention (renewed with the lease).
type IndexedStore interface {
	Store
	PairIndex
}

// Bare is an address without its channel: whatsapp:+1555… → +1555…; +1555… as it is.
func Bare(address string) string {
	if i := strings.IndexByte(address, ':'); i >= 0 {
		return address[i+1:]
	}
	return address
}
