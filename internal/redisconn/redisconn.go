// Package redisconn reads OPTIN_REDIS_URL — one Redis, or a master found through Sentinel — into the
// options of the two clients that use it: go-redis (the stores, the rate limiter) and asynq (the
// queues). Through Sentinel both follow the master across a failover with their own failover clients.
package redisconn

import (
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
	// single is set for redis:// and rediss://; failover for redis+sentinel:// and rediss+sentinel://.
	single   *redis.Options
	failover *redis.FailoverOptions
}

// Parse reads raw:
//
//	redis://[user:password@]host:port[/db]                                  one Redis (rediss:// for TLS)
//	redis+sentinel://[user:password@]host1:port1,host2:port2/master[/db]    the master Sentinel names
//
// With rediss+sentinel:// the connections to Redis and to the Sentinels use TLS. The user and password
// are Redis's; a Sentinel that asks for its own takes them from sentinel_user and sentinel_password in
// the query.
func Parse(raw string) (Conn, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Conn{}, errors.New("want redis://, rediss://, redis+sentinel:// or rediss+sentinel://")
	}
	switch scheme {
	case "redis", "rediss":
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return Conn{}, err
		}
		return Conn{single: opt}, nil
	case "redis+sentinel", "rediss+sentinel":
	default:
		return Conn{}, fmt.Errorf("scheme %q: want redis, rediss, redis+sentinel or rediss+sentinel", scheme)
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
	opt := &redis.FailoverOptions{Username: user, Password: password}
	for h := range strings.SplitSeq(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return Conn{}, fmt.Errorf("sentinel %q: want host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Conn{}, fmt.Errorf("sentinel %q: bad port", h)
		}
		opt.SentinelAddrs = append(opt.SentinelAddrs, h)
	}
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

// Client returns a go-redis client whose calls end with their context: a stalled Redis then costs a
// request its own deadline. Through Sentinel it asks the Sentinels for the master and follows it when
// they promote another.
func (c Conn) Client() *redis.Client {
	if c.failover != nil {
		opt := *c.failover
		opt.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(&opt)
	}
	opt := *c.single
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(&opt)
}

// Asynq returns the connection options asynq's servers take.
func (c Conn) Asynq() asynq.RedisConnOpt {
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
	if c.failover != nil {
		return c.failover.MasterName + " via sentinels " + strings.Join(c.failover.SentinelAddrs, ",")
	}
	return c.single.Addr
}
