// One load generator of `tutorial bench`, written with the official Socket.IO client
// (npm `socket.io-client`, pinned in package-lock.json). It speaks the interface of
// tutorial/cluster/benchwire.py, like the Python generator: it reads a WorkerConfig
// from the JSON file named on its command line, connects every client (WebSocket only)
// and joins the room, prints {"kind":"ready"}; on {"kind":"warmup"} (every worker is
// connected) it sends the warm-up messages (config.warmup per sender, acked, neither
// timed nor counted) and prints {"kind":"warm"} once every client has them; it waits for
// {"kind":"go"} on stdin, then
// each sender sends its messages one after the other, each waiting for its ack. It
// prints {"kind":"progress"} every 0.25 s and one {"kind":"result"} at the end.
//
//   node tutorial/cluster/js/bench_worker.mjs CONFIG.json
//
// Times are CLOCK_MONOTONIC seconds (process.hrtime, libuv's uv_hrtime), the clock of
// Python's time.monotonic(), so the parent and every generator share one timeline.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const ROOM = "general";
const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const teaching = config.kind === "teaching";
// nginx terminates TLS with the run's throwaway CA: trust it, and only it.
const ca = config.ca ? readFileSync(config.ca) : undefined;
const events = teaching
  ? { message: "new-message", join: "join-room", send: "send-message" }
  : { message: "msg", join: "join", send: "send" };

const now = () => Number(process.hrtime.bigint()) / 1e9;
const say = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const latencies = [];
let count = 0;
let errors = 0;
let last = 0;
let remaining = config.clients.length;
// Warm-up messages (config.warmup per sender, after "warmup"): received, not timed.
let cold = config.warmup_per_client ? config.clients.length : 0;
let warmed;
const warm = new Promise((resolve) => {
  warmed = resolve;
});
if (cold === 0) warmed();
let finish;
const done = new Promise((resolve) => {
  finish = resolve;
});

function connect(spec) {
  return new Promise((resolve, reject) => {
    const options = {
      transports: ["websocket"],
      reconnection: false,
      timeout: 60_000, // a server holding 10,000 idle clients (--idle) may be slow to answer
    };
    if (teaching) options.auth = { token: spec.token };
    if (ca) options.ca = ca;
    // nginx's sticky hash reads the source address: bind the one the parent chose.
    if (spec.addr) {
      options.agent = ca
        ? new https.Agent({ localAddress: spec.addr, ca })
        : new http.Agent({ localAddress: spec.addr });
    }
    const socket = io(config.url, options);
    let got = 0;
    let warmups = 0;
    socket.on(events.message, (data) => {
      if (data.text.startsWith("warmup ")) {
        warmups += 1;
        if (warmups === config.warmup_per_client) {
          cold -= 1;
          if (cold === 0) warmed();
        }
        return;
      }
      const t = now();
      latencies.push((t - Number.parseFloat(data.text.split(" ", 1)[0])) * 1000);
      count += 1;
      last = t;
      got += 1;
      if (got === config.expected_per_client) {
        remaining -= 1;
        if (remaining === 0) finish();
      }
    });
    socket.once("connect", async () => {
      try {
        const join = teaching ? { roomId: ROOM } : ROOM;
        const ack = await socket.timeout(60_000).emitWithAck(events.join, join);
        if (!ack || !ack.ok) throw new Error(`join refused: ${JSON.stringify(ack)}`);
        resolve(socket);
      } catch (err) {
        reject(err);
      }
    });
    socket.once("connect_error", (err) => reject(new Error(`connect: ${err.message}`)));
  });
}

async function sender(socket, spec) {
  for (let k = 0; k < config.messages; k++) {
    const text = `${now().toFixed(6)} ${spec.user} ${k}`;
    const payload = { roomId: ROOM, text, clientMsgId: `${spec.user}-${k}` };
    try {
      const ack = await socket.timeout(30_000).emitWithAck(events.send, payload);
      if (!(ack && ack.ok)) errors += 1;
    } catch {
      errors += 1;
    }
  }
}

async function main() {
  const clients = [];
  for (const spec of config.clients) clients.push([await connect(spec), spec]);
  if (config.clients.length === 0) finish();
  say({ kind: "ready" });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const kind = JSON.parse(line).kind;
    if (kind === "warmup") {
      await Promise.all(
        clients
          .filter(([, spec]) => spec.sender)
          .map(async ([socket, spec]) => {
            for (let k = 0; k < config.warmup; k++) {
              const text = `warmup ${spec.user} ${k}`;
              const payload = { roomId: ROOM, text, clientMsgId: `${spec.user}-w${k}` };
              await socket.timeout(30_000).emitWithAck(events.send, payload);
            }
          }),
      );
      await warm;
      say({ kind: "warm" });
    }
    if (kind === "go") break;
  }
  const ticker = setInterval(() => say({ kind: "progress", deliveries: count }), 250);
  const senders = clients.filter(([, spec]) => spec.sender).map(([s, spec]) => sender(s, spec));
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, config.timeout * 1000);
  });
  await Promise.race([done, timeout]);
  await Promise.race([Promise.all(senders), timeout]);
  clearTimeout(timer);
  clearInterval(ticker);
  for (const [socket] of clients) socket.disconnect();
  // stdout is a pipe, written asynchronously: exit only once the result is out.
  const rounded = latencies.map((x) => Math.round(x * 1000) / 1000);
  const line = `${JSON.stringify({ kind: "result", deliveries: count, last, errors, latencies: rounded })}\n`;
  process.stdout.write(line, () => process.exit(0));
}

main().catch((err) => {
  console.error(`bench worker: ${err.stack || err}`);
  process.exit(1);
});
