package redisconn

import (
	"errors"
	"slices"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestParseSentinel(t *testing.T) {
	c, err := Parse("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380/mymaster/2?sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	f := c.failover
	if f == nil || f.MasterName != "mymaster" || f.DB != 2 || f.Password != "s@cret" || f.Username != "" || f.SentinelPassword != "sp" ||
		!slices.Equal(f.SentinelAddrs, []string{"10.0.0.1:26379", "10.0.0.2:26380"}) || f.TLSConfig != nil {
		t.Fatalf("parsed %+v", f)
	}
	a, ok := c.Asynq().(asynq.RedisFailoverClientOpt)
	if !ok || a.MasterName != "mymaster" || a.DB != 2 || a.Password != "s@cret" || len(a.SentinelAddrs) != 2 {
		t.Fatalf("asynq options %+v", c.Asynq())
	}
	if c.Where() != "mymaster via sentinels 10.0.0.1:26379,10.0.0.2:26380" {
		t.Errorf("where %q", c.Where())
	}
	c, err = Parse("rediss+sentinel://user:pw@sentinel:26379/primary")
	if err != nil || c.failover.TLSConfig == nil || c.failover.Username != "user" || c.failover.DB != 0 {
		t.Fatalf("TLS: %+v %v", c.failover, err)
	}
}

func TestParseSingle(t *testing.T) {
	c, err := Parse("redis://:pw@127.0.0.1:6380/3")
	if err != nil || c.single.Addr != "127.0.0.1:6380" || c.single.DB != 3 || c.Where() != "127.0.0.1:6380" {
		t.Fatalf("%+v %v", c.single, err)
	}
	if a, ok := c.Asynq().(asynq.RedisClientOpt); !ok || a.Addr != "127.0.0.1:6380" || a.Password != "pw" || a.DB != 3 {
		t.Fatalf("asynq options %+v", c.Asynq())
	}
}

func TestParseRefuses(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1:6379",
		"127.0.0.1:6379",
		"redis+sentinel://127.0.0.1:26379",             // no master
		"redis+sentinel://127.0.0.1/mymaster",          // no port
		"redis+sentinel://127.0.0.1:99999/mymaster",    // bad port
		"redis+sentinel://127.0.0.1:26379/mymaster/x",  // bad db
		"redis+sentinel://:%zz@127.0.0.1:26379/master", // bad escape
	} {
		if _, err := Parse(raw); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
}

func TestParseCluster(t *testing.T) {
	c, err := Parse("redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2:7001")
	if err != nil {
		t.Fatal(err)
	}
	o := c.cluster
	if !c.Cluster() || o == nil || o.Password != "s@cret" || o.Username != "" || o.TLSConfig != nil ||
		!slices.Equal(o.Addrs, []string{"10.0.0.1:7000", "10.0.0.2:7001"}) {
		t.Fatalf("parsed %+v", o)
	}
	a, ok := c.Asynq().(asynq.RedisClusterClientOpt)
	if !ok || a.Password != "s@cret" || !slices.Equal(a.Addrs, o.Addrs) {
		t.Fatalf("asynq options %+v", c.Asynq())
	}
	if c.Where() != "cluster via 10.0.0.1:7000,10.0.0.2:7001" {
		t.Errorf("where %q", c.Where())
	}
	u := c.Universal()
	defer u.Close()
	if _, ok := u.(*redis.ClusterClient); !ok {
		t.Errorf("universal client %T, want a cluster client", u)
	}
	// One node's client would answer MOVED for most keys: it refuses every command instead.
	single := c.Client()
	defer single.Close()
	if err := single.Ping(t.Context()).Err(); !errors.Is(err, errNeedsUniversal) {
		t.Errorf("ping through Client on a cluster: %v", err)
	}
	c, err = Parse("rediss+cluster://user:pw@node:7000")
	if err != nil || c.cluster.TLSConfig == nil || c.cluster.Username != "user" || c.cluster.Password != "pw" {
		t.Fatalf("TLS: %+v %v", c.cluster, err)
	}
	if c, _ := Parse("redis://127.0.0.1:6379/0"); c.Cluster() {
		t.Error("one Redis taken for a cluster")
	}
	for _, raw := range []string{
		"redis+cluster://127.0.0.1:7000/0",     // a cluster has no db
		"redis+cluster://127.0.0.1",            // no port
		"redis+cluster://127.0.0.1:7000,:7001", // no host
		"redis+cluster://127.0.0.1:7000?x=1",   // no options
	} {
		if _, err := Parse(raw); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
}
