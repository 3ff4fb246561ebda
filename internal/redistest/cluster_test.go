package redistest

import (
	"strings"
	"testing"
)

// The cluster serves all its slots from every node, and a key is answered only where its slot lives.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 3, 0)
	moved := 0
	for _, s := range c.Nodes {
		if r := s.command("CLUSTER", "INFO"); !strings.Contains(r, "cluster_slots_assigned:16384") || !strings.Contains(r, "cluster_known_nodes:3") {
			t.Errorf("node %d: %s", s.Port, r)
		}
		if strings.HasPrefix(s.command("SET", "somekey", "1"), "-MOVED") {
			moved++
		}
	}
	if moved != 2 {
		t.Errorf("%d of 3 nodes redirected a key, want 2", moved)
	}
	keys := func() (n int) {
		for _, s := range c.Nodes {
			if s.command("DBSIZE") == ":1\r\n" {
				n++
			}
		}
		return n
	}
	if n := keys(); n != 1 {
		t.Errorf("%d nodes hold the key, want 1", n)
	}
	c.Flush(t)
	if n := keys(); n != 0 {
		t.Errorf("%d nodes hold the key after the flush", n)
	}
	if !strings.HasPrefix(c.URL(), "redis+cluster://127.0.0.1:") || strings.Count(c.URL(), ",") != 2 {
		t.Errorf("url %s", c.URL())
	}
}
