// Drives the emulator with Twilio's official node SDK, as a platform would: a conversation, its
// participants, a message, the message list, the participant conversations lookup, and a
// service-scoped fetch. Run by emulator/node_sdk_test.go, which checks what arrived at the emulator.
//
// Environment: EMULATOR_URL (scheme and host), ACCOUNT_SID, AUTH_TOKEN. Prints one JSON object.
"use strict";

const twilio = require("twilio");

const base = new URL(process.env.EMULATOR_URL);
const real = new twilio.RequestClient();

// The SDK's hosts are fixed (conversations.twilio.com): its requests go to the emulator instead.
const toEmulator = {
  request(opts) {
    const u = new URL(opts.uri);
    if (u.hostname === "twilio.com" || u.hostname.endsWith(".twilio.com")) {
      u.protocol = base.protocol;
      u.host = base.host;
    }
    return real.request({ ...opts, uri: u.href });
  },
};

const customer = "whatsapp:+15550001111";
const rider = "whatsapp:+15550002222";
const business = "whatsapp:+15550000000";

async function main() {
  const client = twilio(process.env.ACCOUNT_SID, process.env.AUTH_TOKEN, { httpClient: toEmulator });
  const v1 = client.conversations.v1;

  const conv = await v1.conversations.create({ friendlyName: "Order 1042", uniqueName: "order-1042" });
  const participants = [];
  for (const address of [customer, rider]) {
    participants.push(await v1.conversations(conv.sid).participants.create({
      "messagingBinding.address": address,
      "messagingBinding.proxyAddress": business,
    }));
  }
  participants.push(await v1.conversations(conv.sid).participants.create({
    identity: "dispatcher",
    "messagingBinding.projectedAddress": "+15550009999",
  }));
  const message = await v1.conversations(conv.sid).messages.create({
    author: rider,
    body: "On my way",
    attributes: JSON.stringify({ order: 1042 }),
  });
  const messages = await v1.conversations(conv.sid).messages.list({ order: "asc", limit: 20 });
  const lookup = await v1.participantConversations.list({ address: customer });
  const scoped = await v1.services(conv.chatServiceSid).conversations(conv.sid).fetch();

  return {
    conversation: { sid: conv.sid, uniqueName: conv.uniqueName, friendlyName: conv.friendlyName, state: conv.state, chatServiceSid: conv.chatServiceSid },
    participants: participants.map((p) => ({ sid: p.sid, identity: p.identity, messagingBinding: p.messagingBinding })),
    message: { sid: message.sid, index: message.index, author: message.author, body: message.body, attributes: message.attributes, participantSid: message.participantSid },
    messages: messages.map((m) => ({ sid: m.sid, author: m.author, body: m.body })),
    participantConversations: lookup.map((c) => ({
      conversationSid: c.conversationSid, participantSid: c.participantSid,
      conversationUniqueName: c.conversationUniqueName, conversationState: c.conversationState,
      participantMessagingBinding: c.participantMessagingBinding,
    })),
    scoped: { sid: scoped.sid, url: scoped.url },
  };
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out) + "\n"),
  (err) => {
    process.stderr.write(`${err.status || ""} ${err.code || ""} ${err.message}\n`);
    process.exit(1);
  },
);
