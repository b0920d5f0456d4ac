// Interop check: the official JavaScript client (socket.io-client v4, from npm) against
// the tutorial's Python server. Run by tests/test_js_client.py:
//
//   node tests/js/interop.mjs URL [--transports websocket,polling] [--user alice]
//        [--room general] [--text "..."] [--client-msg-id ID]
//
// It logs in with the CONNECT auth {username, password}, joins the room, sends one
// message with a clientMsgId and prints one JSON line per thing it received:
//   {"event": "connect", "transport": ...}, {"event": "connect-confirmed", "data": ...},
//   {"event": "room-joined", ...}, {"event": "new-message", ...}, {"event": "ack", ...}
// then {"event": "done"} and exits 0. Any failure prints {"event": "fail"} and exits 1.
import { io } from "socket.io-client";

function parseArgs(argv) {
  const args = { url: null, transports: ["websocket"], user: "alice", room: "general" };
  args.text = "Hello everyone! (from socket.io-client)";
  args.clientMsgId = `js-${Date.now()}`;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === "--transports") args.transports = next().split(",");
    else if (a === "--user") args.user = next();
    else if (a === "--password") args.password = next();
    else if (a === "--room") args.room = next();
    else if (a === "--text") args.text = next();
    else if (a === "--client-msg-id") args.clientMsgId = next();
    else if (!args.url) args.url = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!args.url) throw new Error("usage: interop.mjs URL [options]");
  args.password ??= args.user;
  return args;
}

const print = (record) => process.stdout.write(`${JSON.stringify(record)}\n`);

const args = parseArgs(process.argv.slice(2));
const socket = io(args.url, {
  transports: args.transports,
  upgrade: false, // stay on the transport the test asked for
  reconnection: false,
  auth: { username: args.user, password: args.password },
});

const fail = (reason) => {
  print({ event: "fail", reason: String(reason) });
  socket.disconnect();
  process.exit(1);
};
const timer = setTimeout(() => fail("timeout: nothing more within 10 s"), 10_000);

const withTimeout = (event, payload) =>
  socket.timeout(5000).emitWithAck(event, payload);

socket.on("connect", () => {
  print({ event: "connect", transport: socket.io.engine.transport.name, id: socket.id });
});
socket.on("connect_error", (err) => {
  print({ event: "connect_error", message: err.message, data: err.data ?? null });
  fail(`connect_error: ${err.message}`);
});
socket.on("error", (data) => print({ event: "error", data }));
socket.on("room-joined", (data) => print({ event: "room-joined", data }));

socket.on("new-message", async (data) => {
  print({ event: "new-message", data });
});

socket.once("connect-confirmed", async (data) => {
  print({ event: "connect-confirmed", data });
  try {
    const joined = await withTimeout("join-room", { roomId: args.room });
    print({ event: "ack", for: "join-room", data: joined });
    if (!joined.ok) return fail("join-room refused");
    const own = new Promise((resolve) => {
      const check = (m) => {
        if (m.clientMsgId === args.clientMsgId) {
          socket.off("new-message", check);
          resolve(m);
        }
      };
      socket.on("new-message", check);
    });
    const sent = await withTimeout("send-message", {
      roomId: args.room,
      text: args.text,
      clientMsgId: args.clientMsgId,
    });
    print({ event: "ack", for: "send-message", data: sent });
    if (!sent.ok) return fail("send-message refused");
    await own; // the echo of our own message (seed diagram 3, step 4)
    print({ event: "done", transport: socket.io.engine.transport.name });
    clearTimeout(timer);
    socket.disconnect();
    // Over WebSocket node now ends by itself. Over polling the DISCONNECT goes out in a
    // POST while the last long-poll GET stays open on the server (until its next ping
    // interval), which would keep node alive: leave it a moment for the POST, then exit.
    setTimeout(() => process.exit(0), 2000).unref();
  } catch (err) {
    fail(err);
  }
});
