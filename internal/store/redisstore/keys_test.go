package redisstore

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
)

// Every script is given each key it touches in KEYS, its KEYS are of one hash slot, and so are the
// keys of each WATCH/MULTI transaction and of each command that takes several: checked on what a
// real Redis runs (MONITOR lists each command a script runs after the script's own line) while every
// store's contract runs against it. A Redis Cluster refuses keys of two slots, but not a key of the
// same slot that a script builds itself: this test catches both.
func TestScriptsDeclareTheirKeys(t *testing.T) {
	srv := redistest.Start(t)
	lines := monitor(t, srv)
	admin := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer admin.Close()
	contracts(t, func(t testing.TB, retention time.Duration) *Store { return openFor(t, srv, retention) }, func(t testing.TB) {
		if err := admin.FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
	})
	got := lines()
	if len(got) < 1000 {
		t.Fatalf("MONITOR saw %d commands: too few for the contracts", len(got))
	}
	keysOf := map[string][]string{} // a command's keys, asked of Redis (COMMAND GETKEYS)
	getKeys := func(args []string) []string {
		id := strings.Join(args, "\x00")
		if k, ok := keysOf[id]; ok {
			return k
		}
		cmd := redis.NewStringSliceCmd(t.Context(), append([]any{"COMMAND", "GETKEYS"}, anys(args)...)...)
		_ = admin.Process(t.Context(), cmd)
		k, err := cmd.Result()
		if err != nil && !strings.Contains(err.Error(), "no key arguments") && !strings.Contains(err.Error(), "wrong number of arguments") {
			t.Fatalf("keys of %q: %v", args[0], err)
		}
		keysOf[id] = k
		return k
	}
	var scripts, inScripts, txs int
	var declared map[string]bool // the running script's KEYS
	var script string
	tx := map[string][]string{} // per client: the keys watched and queued in its transaction
	inTx := map[string]bool{}
	problems := map[string]bool{}
	for _, l := range got {
		cmd := strings.ToLower(l.args[0])
		if l.client == "lua" {
			inScripts++
			for _, k := range getKeys(l.args) {
				if !declared[k] {
					problems[fmt.Sprintf("script %s: %s touches %s, not in its KEYS", script, l.args[0], k)] = true
				}
			}
			continue
		}
		declared = nil
		switch cmd {
		case "eval", "evalsha", "eval_ro", "evalsha_ro":
			scripts++
			n, _ := strconv.Atoi(l.args[2])
			keys := l.args[3 : 3+n]
			declared = map[string]bool{}
			for _, k := range keys {
				declared[k] = true
			}
			script = l.args[1]
			if len(script) > 40 {
				script = strings.Fields(script)[0] + "…"
			}
			if !oneSlot(keys) {
				problems[fmt.Sprintf("script %s: KEYS of several slots %v", script, keys)] = true
			}
		case "watch":
			tx[l.client] = append(tx[l.client], l.args[1:]...)
		case "multi":
			inTx[l.client] = true
		case "exec", "discard", "unwatch":
			if cmd == "exec" && !oneSlot(tx[l.client]) {
				problems[fmt.Sprintf("a transaction over several slots: %v", tx[l.client])] = true
			}
			txs++
			delete(tx, l.client)
			delete(inTx, l.client)
		default:
			keys := getKeys(l.args)
			if inTx[l.client] || tx[l.client] != nil {
				tx[l.client] = append(tx[l.client], keys...)
			} else if !oneSlot(keys) {
				problems[fmt.Sprintf("%s over several slots: %v", l.args[0], keys)] = true
			}
		}
	}
	for p := range problems {
		t.Error(p)
	}
	t.Logf("%d commands: %d scripts running %d commands, %d transactions", len(got), scripts, inScripts, txs)
	if scripts == 0 || inScripts == 0 || txs == 0 {
		t.Error("no script or no transaction seen")
	}
}

// monitored is one command MONITOR saw: the client's address, or "lua" for a script's command.
type monitored struct {
	client string
	args   []string
}

// monitor records every command srv runs until the returned function is called.
func monitor(t *testing.T, srv *redistest.Server) func() []monitored {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.Port))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(c, 1<<20)
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	var (
		mu   sync.Mutex
		seen []monitored
		bad  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			m, err := parseMonitor(strings.TrimSuffix(line, "\r\n"))
			mu.Lock()
			if err != nil && bad == nil {
				bad = err
			}
			seen = append(seen, m)
			mu.Unlock()
		}
	}()
	return func() []monitored {
		// MONITOR has no end: mark one and read up to the mark. Redis shows commands in the order it
		// runs them, so every command of the contracts (which have returned) comes before it.
		const mark = "optin-monitor-end"
		e, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if _, err := fmt.Fprintf(e, "ECHO %s\r\n", mark); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(e).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		at := -1 // the mark's place in seen
		poll.Until(t, "MONITOR to show the end mark", func() bool {
			select {
			case <-done:
				return true // MONITOR broke off: reported below
			default:
			}
			mu.Lock()
			defer mu.Unlock()
			at = slices.IndexFunc(seen, func(m monitored) bool {
				return len(m.args) == 2 && strings.EqualFold(m.args[0], "echo") && m.args[1] == mark
			})
			return at >= 0
		})
		c.Close()
		<-done
		if bad != nil {
			t.Fatal(bad)
		}
		if at < 0 {
			t.Fatal("MONITOR broke off before the end mark")
		}
		return seen[:at]
	}
}

// parseMonitor reads `+1796425733.054918 [0 127.0.0.1:34036] "eval" "…" "1" "k1"`.
func parseMonitor(line string) (monitored, error) {
	open, end := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
	if !strings.HasPrefix(line, "+") || open < 0 || end < open {
		return monitored{}, fmt.Errorf("MONITOR line %q", line)
	}
	_, client, _ := strings.Cut(line[open+1:end], " ")
	var args []string
	rest := line[end+1:]
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if rest[0] != '"' {
			return monitored{}, fmt.Errorf("MONITOR line %q", line)
		}
		var b strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] != '\\' || i+1 == len(rest) {
				b.WriteByte(rest[i])
				continue
			}
			i++
			switch rest[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'x':
				v, err := strconv.ParseUint(rest[i+1:i+3], 16, 8)
				if err != nil {
					return monitored{}, errors.New("MONITOR escape")
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(rest[i])
			}
		}
		args = append(args, b.String())
		rest = rest[min(i+1, len(rest)):]
	}
	if len(args) == 0 {
		return monitored{}, fmt.Errorf("MONITOR line %q", line)
	}
	return monitored{client: client, args: args}, nil
}

// oneSlot reports whether the keys hash to one Redis Cluster slot.
func oneSlot(keys []string) bool {
	for _, k := range keys[min(1, len(keys)):] {
		if slot(k) != slot(keys[0]) {
			return false
		}
	}
	return true
}

// slot is Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, or of the key when it has
// none, modulo 16,384.
func slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := range len(key) {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// The slot function agrees with Redis's documented examples.
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{"123456789": 0x31c3, "{123456789}.following": 0x31c3} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
	if slot("{user1000}.following") != slot("{user1000}.followers") || slot("a") == slot("b") {
		t.Error("hash tags")
	}
}
