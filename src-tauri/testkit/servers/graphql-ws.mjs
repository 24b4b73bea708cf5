// The real `graphql-ws` server (graphql-transport-ws) with `graphql` and
// `ws`, on loopback, for Holdline's tests. Its schema keeps a log per feed
// and replays it from `since`; `onConnect` wants the token in the
// connection_init payload. Driven by JSON lines on stdin; what it sees is
// JSON lines on stdout.
//
// Options (one JSON argument): {token}.
//
// stdin:  {"id": N, "cmd": "tick", "feed": F, "value": V}   (appends to F)
//         {"id": N, "cmd": "chat", "text": T}               (no seq)
//         {"id": N, "cmd": "ping"}          (a ping to every client)
//         {"id": N, "cmd": "finish"}        (completes every `finite`)
// stdout: {"type": "listening", "port": P}
//         {"type": "connect", "params": {...keys}, "token": T,
//          "headers": {...}, "url": U}
//         {"type": "refused"}
//         {"type": "subscribe", "field": F, "args": {...}}
//         {"type": "mutation", "feed": F, "text": T, "id": I, "seq": S}
//         {"type": "pong"}
//         {"type": "done", "id": N}

import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { EventEmitter } from 'node:events';
import {
  GraphQLSchema, GraphQLObjectType, GraphQLString, GraphQLInt, GraphQLFloat, GraphQLNonNull,
} from 'graphql';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';

const options = JSON.parse(process.argv[2] ?? '{}');
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const bus = new EventEmitter();
bus.setMaxListeners(0);
const logs = new Map(); // feed -> [{seq, value}]
const posted = new Map(); // publish id -> {id, seq}

// Yields what `event` brings, after `first`, until `stop` fires.
async function* stream(event, first = [], stop = null) {
  const queue = [...first];
  let wake = null;
  let done = false;
  const push = (item) => { queue.push(item); wake?.(); };
  const end = () => { done = true; wake?.(); };
  bus.on(event, push);
  if (stop) bus.on(stop, end);
  try {
    while (true) {
      while (queue.length) yield queue.shift();
      if (done) return;
      await new Promise((resolve) => { wake = resolve; });
      wake = null;
    }
  } finally {
    bus.off(event, push);
    if (stop) bus.off(stop, end);
  }
}

const Tick = new GraphQLObjectType({
  name: 'Tick',
  fields: { seq: { type: new GraphQLNonNull(GraphQLInt) }, value: { type: GraphQLFloat } },
});
const Post = new GraphQLObjectType({
  name: 'Post',
  fields: { id: { type: GraphQLString }, seq: { type: new GraphQLNonNull(GraphQLInt) } },
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({ name: 'Query', fields: { hello: { type: GraphQLString, resolve: () => 'hi' } } }),
  mutation: new GraphQLObjectType({
    name: 'Mutation',
    fields: {
      post: {
        type: Post,
        args: { feed: { type: GraphQLString }, text: { type: GraphQLString }, id: { type: GraphQLString } },
        resolve: (_, { feed, text, id }) => {
          // A repeat of an id gets what the first got: the outbox sends a
          // publish again when its result was lost.
          if (id && posted.has(id)) return posted.get(id);
          const log = logs.get(feed) ?? [];
          logs.set(feed, log);
          const seq = log.length + 1;
          log.push({ seq, value: Number(text) || 0 });
          bus.emit(`tick:${feed}`, { seq, value: Number(text) || 0 });
          const result = { id, seq };
          if (id) posted.set(id, result);
          say({ type: 'mutation', feed, text, id, seq });
          return result;
        },
      },
    },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      ticks: {
        type: Tick,
        args: { feed: { type: new GraphQLNonNull(GraphQLString) }, since: { type: GraphQLInt } },
        subscribe: (_, { feed, since }) => {
          say({ type: 'subscribe', field: 'ticks', args: { feed, since: since ?? null } });
          const replay = since == null ? [] : (logs.get(feed) ?? []).filter((t) => t.seq > since);
          return (async function* () {
            for await (const tick of stream(`tick:${feed}`, replay)) yield { ticks: tick };
          })();
        },
      },
      chat: {
        type: GraphQLString,
        subscribe: () => {
          say({ type: 'subscribe', field: 'chat', args: {} });
          return (async function* () {
            for await (const text of stream('chat')) yield { chat: text };
          })();
        },
      },
      fails: {
        type: GraphQLString,
        subscribe: () => {
          say({ type: 'subscribe', field: 'fails', args: {} });
          throw new Error('this subscription always fails');
        },
      },
      finite: {
        type: GraphQLString,
        subscribe: () => {
          say({ type: 'subscribe', field: 'finite', args: {} });
          return (async function* () {
            for await (const text of stream('finite', [], 'finish')) yield { finite: text };
          })();
        },
      },
    },
  }),
});

const http = createServer();
const wss = new WebSocketServer({ server: http, path: '/graphql' });
wss.on('connection', (socket, request) => {
  socket.holdlineHeaders = request.headers;
  socket.holdlineUrl = request.url;
  socket.on('message', (data) => {
    try {
      if (JSON.parse(data.toString()).type === 'pong') say({ type: 'pong' });
    } catch { /* not ours to judge */ }
  });
});
useServer({
  schema,
  onConnect: (ctx) => {
    const params = ctx.connectionParams ?? {};
    say({
      type: 'connect', params: Object.keys(params), token: params.token ?? null,
      headers: ctx.extra.socket.holdlineHeaders, url: ctx.extra.socket.holdlineUrl,
    });
    if (options.token && params.token !== options.token) {
      say({ type: 'refused' });
      return false;
    }
    return true;
  },
}, wss);

createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line);
  switch (command.cmd) {
    case 'tick': {
      const log = logs.get(command.feed) ?? [];
      logs.set(command.feed, log);
      const tick = { seq: log.length + 1, value: command.value ?? 0 };
      log.push(tick);
      bus.emit(`tick:${command.feed}`, tick);
      break;
    }
    case 'chat':
      bus.emit('chat', command.text);
      break;
    case 'ping':
      for (const client of wss.clients) client.send(JSON.stringify({ type: 'ping' }));
      break;
    case 'finish':
      bus.emit('finite', 'last');
      bus.emit('finish');
      break;
    default:
      say({ type: 'error', message: `unknown command ${command.cmd}` });
  }
  say({ type: 'done', id: command.id });
});
process.stdin.on('end', () => process.exit(0));

http.listen(0, '127.0.0.1', () => say({ type: 'listening', port: http.address().port }));
