// Package redisconn reads OPTIN_REDIS_URL — one Redis, a master found through Sentinel, or a Redis
// Cluster — into the options of the two clients that use it: go-redis (the stores, the rate limiter)
// and asynq (the queues). Through Sentinel both follow the master across a failover with their own
// failover clients; on a cluster both route each key to the node that serves its slot.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Conn is a parsed OPTIN_REDIS_URL.
type Conn struct {
	// single is set for redis:// and rediss://; failover for redis+sentinel:// and rediss+sentinel://;
	// cluster for redis+cluster:// and rediss+cluster://.
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// Parse reads raw:
//
//	redis://[user:password@]host:port[/db]                                  one Redis (rediss:// for TLS)
//	redis+sentinel://[user:password@]host1:port1,host2:port2/master[/db]    the master Sentinel names
//	redis+cluster://[user:password@]host1:port1,host2:port2                 a Redis Cluster, by some of its nodes
//
// With rediss+sentinel:// the connections to Redis and to the Sentinels use TLS. The user and password
// are Redis's; a Sentinel that asks for its own takes them from sentinel_user and sentinel_password in
// the query. A cluster's nodes are seeds: the client learns the others (and every failover) from them;
// a cluster has no databases but 0, so it takes no /db; rediss+cluster:// uses TLS.
func Parse(raw string) (Conn, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Conn{}, errors.New("want redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://")
	}
	switch scheme {
	case "redis", "rediss":
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return Conn{}, err
		}
		return Conn{single: opt}, nil
	case "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster":
	default:
		return Conn{}, fmt.Errorf("scheme %q: want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster", scheme)
	}
	rest, query, _ := strings.Cut(rest, "?")
	var user, password string
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		info := rest[:at]
		rest = rest[at+1:]
		u, p, _ := strings.Cut(info, ":")
		var err error
		if user, err = url.PathUnescape(u); err != nil {
			return Conn{}, errors.New("user is not escaped properly")
		}
		if password, err = url.PathUnescape(p); err != nil {
			return Conn{}, errors.New("password is not escaped properly")
		}
	}
	hosts, path, _ := strings.Cut(rest, "/")
	addrs, err := hostPorts(hosts)
	if err != nil {
		return Conn{}, err
	}
	if strings.HasSuffix(scheme, "+cluster") {
		if path != "" || query != "" {
			return Conn{}, errors.New("a cluster URL takes no /db and no query: want …+cluster://host1:port1,host2:port2")
		}
		opt := &redis.ClusterOptions{Addrs: addrs, Username: user, Password: password}
		if scheme == "rediss+cluster" {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return Conn{cluster: opt}, nil
	}
	opt := &redis.FailoverOptions{Username: user, Password: password, SentinelAddrs: addrs}
	master, db, _ := strings.Cut(path, "/")
	if master == "" {
		return Conn{}, errors.New("no master name: want …/mastername[/db]")
	}
	opt.MasterName = master
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return Conn{}, fmt.Errorf("db %q: want a number", db)
		}
		opt.DB = n
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Conn{}, errors.New("query does not parse")
	}
	opt.SentinelUsername, opt.SentinelPassword = q.Get("sentinel_user"), q.Get("sentinel_password")
	if scheme == "rediss+sentinel" {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return Conn{failover: opt}, nil
}

// hostPorts reads host1:port1,host2:port2.
func hostPorts(hosts string) ([]string, error) {
	var out []string
	for h := range strings.SplitSeq(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return nil, fmt.Errorf("node %q: want host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("node %q: bad port", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// Cluster reports whether the URL names a Redis Cluster.
func (c Conn) Cluster() bool { return c.cluster != nil }

// errNeedsUniversal answers every command of the *redis.Client that Client returns for a cluster.
var errNeedsUniversal = errors.New("redisconn: a Redis Cluster needs the client of Conn.Universal, not Conn.Client")

// Universal returns a go-redis client of any kind of URL, with the behaviour Client describes: on a
// cluster a *redis.ClusterClient, which sends each command (and each script, by its first key) to the
// node that serves the key's slot and follows the cluster's failovers and reshards.
func (c Conn) Universal() redis.UniversalClient {
	if c.cluster != nil {
		opt := *c.cluster
		opt.ContextTimeoutEnabled = true
		return redis.NewClusterClient(&opt)
	}
	return c.Client()
}

// Client returns a go-redis client whose calls end with their context: a stalled Redis then costs a
// request its own deadline. Through Sentinel it asks the Sentinels for the master and follows it when
// they promote another.
//
// A cluster cannot be reached through one *redis.Client: for a cluster URL every command of the client
// returned fails with an error that says to use Universal.
func (c Conn) Client() *redis.Client {
	if c.cluster != nil {
		rdb := redis.NewClient(&redis.Options{Addr: c.cluster.Addrs[0]})
		rdb.AddHook(refuse{})
		return rdb
	}
	if c.failover != nil {
		opt := *c.failover
		opt.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(&opt)
	}
	opt := *c.single
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(&opt)
}

// refuse is the hook that fails every command (see Client).
type refuse struct{}

func (refuse) DialHook(next redis.DialHook) redis.DialHook { return next }
func (refuse) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(_ context.Context, cmd redis.Cmder) error {
		cmd.SetErr(errNeedsUniversal)
		return errNeedsUniversal
	}
}
func (refuse) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(_ context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			cmd.SetErr(errNeedsUniversal)
		}
		return errNeedsUniversal
	}
}

// Asynq returns the connection options asynq's servers take.
func (c Conn) Asynq() asynq.RedisConnOpt {
	if o := c.cluster; o != nil {
		return asynq.RedisClusterClientOpt{Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig}
	}
	if f := c.failover; f != nil {
		return asynq.RedisFailoverClientOpt{MasterName: f.MasterName, SentinelAddrs: f.SentinelAddrs,
			SentinelUsername: f.SentinelUsername, SentinelPassword: f.SentinelPassword,
			Username: f.Username, Password: f.Password, DB: f.DB, TLSConfig: f.TLSConfig}
	}
	o := c.single
	return asynq.RedisClientOpt{Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
}

// Where names what the service talks to, for logs: the address, or the master and its Sentinels.
func (c Conn) Where() string {
	if c.cluster != nil {
		return "cluster via " + strings.Join(c.cluster.Addrs, ",")
	}
	if c.failover != nil {
		return c.failover.MasterName + " via sentinels " + strings.Join(c.failover.SentinelAddrs, ",")
	}
	return c.single.Addr
}
