// A real MQTT broker (aedes, MQTT 3.1.1) behind a WebSocket listener that
// speaks the `mqtt` subprotocol, on loopback, for Holdline's tests. Its
// sessions live in memory: a restart of this process is a broker that lost
// its state. Driven by JSON lines on stdin; what it sees is JSON lines on
// stdout.
//
// Options (one JSON argument): {password, username}: a CONNECT must carry
// them (none: everyone is let in).
//
// stdin:  {"id": N, "cmd": "publish", "topic": T, "payload": S | "hex": H,
//          "qos": 0|1, "retain": B}
// stdout: {"type": "listening", "port": P}
//         {"type": "connect", "client_id": C, "clean": B, "username": U,
//          "has_password": B, "keepalive": K, "protocol_version": V}
//         {"type": "refused", "client_id": C}
//         {"type": "subscribe", "client_id": C, "topics": [[F, qos]…]}
//         {"type": "publish", "client_id": C, "topic": T, "payload": S,
//          "qos": Q, "dup": B}
//         {"type": "ack", "client_id": C, "message_id": M}
//         {"type": "disconnect", "client_id": C}
//         {"type": "done", "id": N}

import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';

const options = JSON.parse(process.argv[2] ?? '{}');
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const aedes = await Aedes.createBroker();
aedes.authenticate = (client, username, password, done) => {
  const ok = options.password == null
    || (password?.toString() === options.password && (options.username ?? '') === (username ?? ''));
  if (ok) return done(null, true);
  say({ type: 'refused', client_id: client.id });
  const error = new Error('bad user name or password');
  error.returnCode = 4;
  done(error, false);
};
aedes.preConnect = (client, packet, done) => {
  say({
    type: 'connect',
    client_id: packet.clientId,
    clean: packet.clean,
    username: packet.username ?? null,
    has_password: packet.password != null,
    keepalive: packet.keepalive,
    protocol_version: packet.protocolVersion,
  });
  done(null, true);
};
aedes.on('subscribe', (subscriptions, client) => {
  say({ type: 'subscribe', client_id: client?.id, topics: subscriptions.map((s) => [s.topic, s.qos]) });
});
aedes.on('publish', (packet, client) => {
  if (!client) return; // the broker's own ($SYS, test publishes)
  say({
    type: 'publish', client_id: client.id, topic: packet.topic,
    payload: packet.payload.toString(), qos: packet.qos, dup: packet.dup ?? false,
  });
});
aedes.on('ack', (packet, client) => {
  say({ type: 'ack', client_id: client?.id, message_id: packet?.messageId ?? null });
});
aedes.on('clientDisconnect', (client) => say({ type: 'disconnect', client_id: client.id }));

const http = createServer();
const wss = new WebSocketServer({
  server: http,
  handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
});
wss.on('connection', (socket, request) => aedes.handle(createWebSocketStream(socket), request));

createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line);
  const done = () => say({ type: 'done', id: command.id });
  switch (command.cmd) {
    case 'publish': {
      const payload = command.hex != null ? Buffer.from(command.hex, 'hex') : Buffer.from(command.payload ?? '');
      aedes.publish({
        cmd: 'publish', topic: command.topic, payload, qos: command.qos ?? 1,
        retain: command.retain ?? false, dup: false,
      }, done);
      break;
    }
    default:
      say({ type: 'error', message: `unknown command ${command.cmd}` });
      done();
  }
});
process.stdin.on('end', () => process.exit(0));

http.listen(0, '127.0.0.1', () => say({ type: 'listening', port: http.address().port }));
