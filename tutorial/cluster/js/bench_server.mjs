// The benchmark's Node target: a bare socket.io 4 broadcast server (npm `socket.io`,
// pinned in package-lock.json), the same contract as the Python baseline
// (tutorial/cluster/baseline.py): `join` enters a room and acks {ok: true}; `send`
// broadcasts `msg` to the room (the sender included) and acks {ok: true}.
// GET /healthz answers {ok: true, name}. Socket.IO's defaults are kept, as a Node user
// would run it (permessage-deflate off, as socket.io 4 ships).
//
//   node tutorial/cluster/js/bench_server.mjs --port P [--host 127.0.0.1] [--name node]
//
// It stops on SIGTERM or SIGINT.
import { createServer } from "node:http";
import { Server } from "socket.io";

const args = { host: "127.0.0.1", port: null, name: "node" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--port") args.port = Number(argv[++i]);
  else if (argv[i] === "--host") args.host = argv[++i];
  else if (argv[i] === "--name") args.name = argv[++i];
  else {
    console.error(`unexpected argument ${argv[i]}`);
    process.exit(2);
  }
}
if (!Number.isInteger(args.port)) {
  console.error("usage: bench_server.mjs --port P [--host H] [--name N]");
  process.exit(2);
}

const http = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true, name: args.name }));
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(http);

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("send", (data, ack) => {
    io.to(data.roomId).emit("msg", data);
    if (typeof ack === "function") ack({ ok: true });
  });
});

http.on("error", (err) => {
  console.error(`node bench server ${args.name}: ${err.message}`);
  process.exit(1);
});
http.listen(args.port, args.host, () => {
  console.log(`node ${args.name} listening on http://${args.host}:${args.port}`);
});

const stop = () => {
  io.close();
  http.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
