// Idle clients for `tutorial bench --idle N`: N official Socket.IO clients (npm
// `socket.io-client`) that log in over WebSocket and then only answer the server's pings.
// It reads {"url", "tokens": [...], "batch"} from the JSON file named on its command
// line, connects the clients `batch` at a time, prints {"kind":"ready","connected":n}
// (the interface of tutorial/cluster/benchwire.py), and holds them until its stdin
// closes or it gets SIGTERM.
//
//   node tutorial/cluster/js/idle_clients.mjs CONFIG.json
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const sockets = [];

function connect(token) {
  return new Promise((resolve, reject) => {
    const socket = io(config.url, {
      transports: ["websocket"],
      reconnection: false,
      timeout: 60_000,
      auth: { token },
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`connect: ${err.message}`)));
  });
}

async function main() {
  const batch = config.batch || 100;
  for (let i = 0; i < config.tokens.length; i += batch) {
    const group = config.tokens.slice(i, i + batch).map(connect);
    sockets.push(...(await Promise.all(group)));
  }
  process.stdout.write(`${JSON.stringify({ kind: "ready", connected: sockets.length })}\n`);
  const stop = () => {
    for (const socket of sockets) socket.disconnect();
    process.exit(0);
  };
  process.stdin.on("end", stop);
  process.stdin.resume();
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  console.error(`idle clients: ${err.stack || err}`);
  process.exit(1);
});
