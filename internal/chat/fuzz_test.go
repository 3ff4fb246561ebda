package chat

import (
	"hash/fnv"
	"testing"
)

// FuzzLifecycle runs the simulation (sim_test.go) from a seed and a length the fuzzer chooses: every
// interleaving of starts, ends, answers, Twilio's closes, messages held and sent again, moves to SMS,
// lost and repeated webhooks, Twilio's refusals, killed processes, sweeps and reconciles it finds
// keeps the invariants after every step and once settled. The run is deterministic in its input, so
// a corpus entry replays exactly (the earlier target ran goroutines and wall-clock budgets, and a busy
// machine made the same entry fail now and then).
func FuzzLifecycle(f *testing.F) {
	f.Add([]byte{0, 1})
	f.Add([]byte("order-1 ended while starting"))
	f.Add([]byte{0x80, 0x84, 0x83, 0x81, 0x85})
	f.Fuzz(func(t *testing.T, ops []byte) {
		h := fnv.New64a()
		_, _ = h.Write(ops)
		seed := h.Sum64()
		sm := newSim(t, seed, 3)
		steps := 20 + 10*min(len(ops), 40)
		for range steps {
			sm.step()
			if t.Failed() {
				t.Fatalf("simulation seed %d failed at step %d; replay with -sim.seed=%d -sim.steps=%d\n%s", seed, sm.steps, seed, steps, sm.tail())
			}
		}
		sm.settle()
		if t.Failed() {
			t.Fatalf("simulation seed %d failed once settled; replay with -sim.seed=%d -sim.steps=%d\n%s", seed, seed, steps, sm.tail())
		}
	})
}
