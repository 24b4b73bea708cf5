// The real `socket.io` server, on loopback, for Holdline's tests. It runs
// with connection state recovery on and an auth middleware, and is driven
// by JSON lines on stdin; everything it sees is a JSON line on stdout.
//
// Options come as one JSON argument: {token, pingInterval, pingTimeout,
// maxPayload, namespace}.
//
// stdin:  {"id": N, "cmd": "emit", "room": R|null, "event": E, "args": [...],
//          "binary": [hex…]}     (binary: extra Buffer arguments)
//         {"id": N, "cmd": "disconnect_all"}
// stdout: {"type": "listening", "port": P}
//         {"type": "connection", "recovered": B, "auth": {...keys},
//          "auth_token": T, "has_pid": B, "headers": {...}, "query": {...}}
//         {"type": "refused", "auth_keys": [...]}
//         {"type": "received", "event": E, "args": [...], "acked": B}
//         {"type": "disconnect", "reason": R}
//         {"type": "done", "id": N}

import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";

const options = JSON.parse(process.argv[2] ?? "{}");
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  pingInterval: options.pingInterval ?? 25000,
  pingTimeout: options.pingTimeout ?? 20000,
  maxHttpBufferSize: options.maxPayload ?? 1e6,
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000 },
});
const nsp = io.of(options.namespace ?? "/");

nsp.use((socket, next) => {
  const auth = socket.handshake.auth ?? {};
  if (options.token && auth.token !== options.token) {
    say({ type: "refused", auth_keys: Object.keys(auth) });
    const err = new Error("unauthorized");
    err.data = { reason: "bad token" };
    return next(err);
  }
  next();
});

nsp.on("connection", (socket) => {
  const auth = socket.handshake.auth ?? {};
  say({
    type: "connection",
    recovered: socket.recovered,
    auth_keys: Object.keys(auth),
    auth_token: auth.token ?? null,
    has_pid: typeof auth.pid === "string",
    headers: socket.handshake.headers,
    query: socket.handshake.query,
    url: socket.handshake.url,
  });
  socket.on("join", (room) => socket.join(String(room)));
  socket.onAny((event, ...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    say({ type: "received", event, args, acked: ack !== null });
    if (ack) ack({ ok: true });
  });
  socket.on("disconnect", (reason) => say({ type: "disconnect", reason }));
});

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  switch (command.cmd) {
    case "emit": {
      const args = [...(command.args ?? [])];
      for (const hex of command.binary ?? []) args.push(Buffer.from(hex, "hex"));
      const target = command.room ? nsp.to(command.room) : nsp;
      target.emit(command.event, ...args);
      break;
    }
    case "disconnect_all":
      nsp.disconnectSockets(false);
      break;
    default:
      say({ type: "error", message: `unknown command ${command.cmd}` });
  }
  say({ type: "done", id: command.id });
});
process.stdin.on("end", () => process.exit(0));

http.listen(0, "127.0.0.1", () => say({ type: "listening", port: http.address().port }));
