package main

import (
	"testing"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/redistest"
)

// Two replicas on a Redis Cluster (a redis+cluster:// URL): the chat's store, its number pool and the
// queues all work across the cluster's slots — a start on one replica, the customer's reply on the
// other, the chat connected once.
func TestChatOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3, 0)
	fake := newTwilio(t, emulator.Options{})
	env := adminEnv(map[string]string{"OPTIN_REDIS_URL": cluster.URL()})
	replicas := []*server{start(t, fake, env), start(t, fake, env)}
	code, _, body := replicas[0].api("POST", "/v1/chats", adminToken1, startBody)
	if code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	sid := chatOf(t, body)["conversation_sid"].(string)
	if code, _, body := replicas[1].api("POST", "/v1/chats", adminToken1, startBody); code != 200 {
		t.Fatalf("repeated start on the other replica: %d %s", code, body)
	}
	if n := conversationsCreated(fake); n != 1 {
		t.Errorf("%d conversations created", n)
	}
	if code, body := replicas[1].send(replicas[1].publicPost(reply(sid, msg1, customer, "Yes"))); code != 200 || body != `{"outcome":"accepted"}` {
		t.Fatalf("reply: %d %s", code, body)
	}
	if c := replicas[0].waitChat("order-8812", "connected"); states(c) != "starting,invited,connecting,connected" {
		t.Errorf("history %s", states(c))
	}
}
