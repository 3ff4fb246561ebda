// Package redistest starts throwaway redis-server processes for tests, with append-only persistence so
// that a restart keeps what was acknowledged, and Redis Clusters of such processes. Without
// redis-server (or redis-cli, for a cluster) the test is skipped — except under CI=true, where it
// fails: CI must run every Redis test.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
	// args are added to the command line: a replica's --replicaof, a Sentinel's config.
	args []string
	// sentinel: the process is a Sentinel (its first argument its config file).
	sentinel bool
}

// Start runs a redis-server on a free loopback port with AOF (appendfsync always) in a temporary dir.
func Start(t testing.TB) *Server { return start(t, nil) }

func start(t testing.TB, args []string) *Server {
	t.Helper()
	need(t, "redis-server")
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// need skips the test when program is not installed, or fails it under CI.
func need(t testing.TB, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI: %v", program, err)
		}
		t.Skipf("%s not installed", program)
	}
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// URL is the server's redis:// address.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

func (s *Server) start() {
	s.t.Helper()
	if s.sentinel {
		// Debian's redis-sentinel (which .ci/run installs) is redis-server in Sentinel mode.
		if _, err := exec.LookPath("redis-sentinel"); err == nil {
			s.cmd = exec.Command("redis-sentinel", append(s.args, "--port", strconv.Itoa(s.Port))...)
		} else {
			s.cmd = exec.Command("redis-server", append(s.args, "--sentinel", "--port", strconv.Itoa(s.Port))...)
		}
	} else {
		s.cmd = exec.Command("redis-server", append([]string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--dir", s.dir,
			"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no",
			"--repl-diskless-sync-delay", "0"}, s.args...)...)
	}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.ready() {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d did not start", s.Port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// command sends one command in Redis's inline form and returns the reply ("" on failure).
func (s *Server) command(args ...string) string {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(args, " ") + "\r\n")); err != nil {
		return ""
	}
	buf := make([]byte, 64<<10)
	n, _ := c.Read(buf)
	return string(buf[:n])
}

func (s *Server) ready() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// Kill stops the server at once, as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused process dies only once continued
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Pause stops the server without killing it (SIGSTOP): connections stay open and nothing answers, as
// with a Redis that stalls. Resume continues it; a test that pauses must resume before it ends.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatal("redis-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
}

// Restart kills the server and, after down has passed, starts it again on the same port and data.
func (s *Server) Restart(down time.Duration) {
	s.t.Helper()
	s.Kill()
	time.Sleep(down)
	s.start()
}

// Sentinel is a master, its replicas and the Sentinels that watch it, all on loopback.
type Sentinel struct {
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server
	// Name is the master's name at the Sentinels.
	Name string
}

// StartSentinel runs a master with replicas replicas and sentinels Sentinels (quorum: a majority),
// which declare the master down after a second without an answer and fail over to a replica.
// Replication is asynchronous, as Redis's is.
func StartSentinel(t testing.TB, replicas, sentinels int) *Sentinel {
	t.Helper()
	c := &Sentinel{Name: "mymaster", Master: start(t, nil)}
	for range replicas {
		c.Replicas = append(c.Replicas, start(t, []string{"--replicaof", "127.0.0.1", strconv.Itoa(c.Master.Port)}))
	}
	// Replicas first copy the whole master: until then they hold nothing a failover could promote.
	deadline := time.Now().Add(20 * time.Second)
	for _, r := range c.Replicas {
		for !strings.Contains(r.command("INFO", "replication"), "master_link_status:up") {
			if time.Now().After(deadline) {
				t.Fatalf("replica on port %d never synchronised", r.Port)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for range sentinels {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("bind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			dir, c.Name, c.Master.Port, sentinels/2+1, c.Name, c.Name, c.Name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Server{t: t, Port: freePort(t), dir: dir, args: []string{conf}, sentinel: true}
		s.start()
		t.Cleanup(s.Kill)
		c.Sentinels = append(c.Sentinels, s)
	}
	return c
}

// URL is the redis+sentinel:// address of the master through every Sentinel.
func (c *Sentinel) URL() string {
	addrs := make([]string, len(c.Sentinels))
	for i, s := range c.Sentinels {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", s.Port)
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + c.Name + "/0"
}

// Cluster is a Redis Cluster on loopback.
type Cluster struct {
	// Nodes are every node; which are masters is the cluster's business (redis-cli assigns them, and
	// a failover changes them).
	Nodes []*Server
}

// StartCluster runs a Redis Cluster of masters masters (at least 3, as redis-cli asks), with the
// 16,384 slots split between them and replicas replicas of each, and returns once every node
// reports cluster_state:ok and every replica has copied its master. The nodes keep no data on disk:
// a cluster test does not restart them.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	need(t, "redis-server")
	need(t, "redis-cli")
	c := &Cluster{}
	nodes := masters * (1 + replicas)
	addrs := make([]string, nodes)
	for i := range nodes {
		dir := t.TempDir()
		s := &Server{t: t, Port: freePort(t), dir: dir,
			args: []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "5000", "--appendonly", "no"}}
		s.start()
		t.Cleanup(s.Kill)
		c.Nodes = append(c.Nodes, s)
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", s.Port)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("creating the cluster: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		for {
			info, repl := s.command("CLUSTER", "INFO"), s.command("INFO", "replication")
			if strings.Contains(info, "cluster_state:ok") && (strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node on port %d never became ready: %s", s.Port, repl)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// URL is the redis+cluster:// address of the cluster through all its nodes.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", s.Port)
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// Flush empties every master (and so their replicas): tests that share a cluster start from nothing.
func (c *Cluster) Flush(t testing.TB) {
	t.Helper()
	for _, s := range c.Nodes {
		if !strings.Contains(s.command("INFO", "replication"), "role:master") {
			continue
		}
		if r := s.command("FLUSHALL"); r != "+OK\r\n" {
			t.Fatalf("flushing the cluster node on port %d: %q", s.Port, r)
		}
	}
}
