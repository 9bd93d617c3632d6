// permessage-deflate peers (Node `ws`), for tests/all/deflate.rs.
//
// Usage: node deflate_node.js server [--server-no-context-takeover] [--server-max-window-bits N]
//        node deflate_node.js client URL [--server-no-context-takeover]
//                             [--client-no-context-takeover] [--server-max-window-bits N]
//                             [--client-max-window-bits N] [--text-only]
//
// Both compress every message (threshold 0), with the options given.
//
// server: an echo server on 127.0.0.1, port 0; prints `PORT <n>`, then for every connection one
// line `conn {"request": ..., "answer": ...}` (JSON: the request's Sec-WebSocket-Extensions and
// the answer), then echoes every message (text stays text, binary stays binary).
//
// client: connects offering permessage-deflate as the options say, prints `answer <the
// response's Sec-WebSocket-Extensions, JSON>` and `extensions <ws.extensions, JSON>`, then sends
// the test messages one by one (text and binary, empty ones, 60 similar JSON messages, a 512 KiB
// compressible text, 200 KiB of random bytes), each followed by its echo, which must be the same
// message (type and bytes). Prints `ok N` when all N came back, or `mismatch I WHY`, then
// `closed CODE`. --text-only: text messages only (no newlines in them). Exits 0 unless
// something failed.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const argv = process.argv.slice(2);
const role = argv.shift();
const flag = (name) => argv.includes(name);
const num = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : undefined;
};

const deflate = { threshold: 0 };
if (flag('--server-no-context-takeover')) deflate.serverNoContextTakeover = true;
if (flag('--client-no-context-takeover')) deflate.clientNoContextTakeover = true;
if (num('--server-max-window-bits')) deflate.serverMaxWindowBits = num('--server-max-window-bits');
if (num('--client-max-window-bits')) deflate.clientMaxWindowBits = num('--client-max-window-bits');

function messages(textOnly) {
  const msgs = ['', 'hello', 'héllo wörld ✓'];
  if (!textOnly) msgs.push(Buffer.alloc(0), Buffer.from([...Array(256).keys()]), Buffer.alloc(1000));
  for (let i = 0; i < 60; i++) {
    msgs.push(JSON.stringify({
      seq: i, user: 'bob', channel: 'town-square',
      text: `message number ${i} about the weather, which is fine`, tags: ['a', 'b', 'c'],
    }));
  }
  const row = '{"id": 12345, "name": "permessage-deflate", "ok": true, "values": [1, 2, 3]}, ';
  msgs.push(('[' + row.repeat(Math.ceil((512 * 1024) / row.length))).slice(0, 512 * 1024));
  const random = crypto.randomBytes(textOnly ? 100 * 1024 : 200 * 1024);
  msgs.push(textOnly ? random.toString('hex') : random);
  return msgs;
}

if (role === 'server') {
  const wss = new WebSocket.WebSocketServer({
    host: '127.0.0.1', port: 0, perMessageDeflate: deflate, maxPayload: 0,
  });
  wss.on('listening', () => console.log(`PORT ${wss.address().port}`));
  wss.on('headers', (headers, req) => {
    const answer = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
    console.log(`conn ${JSON.stringify({
      request: req.headers['sec-websocket-extensions'] || '',
      answer: answer ? answer.replace(/^[^:]*:\s*/, '') : '',
    })}`);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
} else if (role === 'client') {
  const url = argv.shift();
  const msgs = messages(flag('--text-only'));
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 0 });
  let i = 0;
  const fail = (why) => {
    console.log(`mismatch ${i} ${why}`);
    process.exit(1);
  };
  const next = () => {
    if (i === msgs.length) {
      console.log(`ok ${msgs.length}`);
      ws.close(1000);
      return;
    }
    const m = msgs[i];
    ws.send(m, { binary: typeof m !== 'string' });
  };
  ws.on('upgrade', (res) => {
    console.log(`answer ${JSON.stringify(res.headers['sec-websocket-extensions'] || '')}`);
  });
  ws.on('open', () => {
    console.log(`extensions ${JSON.stringify(ws.extensions)}`);
    next();
  });
  ws.on('message', (data, isBinary) => {
    const m = msgs[i];
    const want = typeof m === 'string' ? Buffer.from(m) : m;
    if (isBinary !== (typeof m !== 'string')) fail(`binary ${isBinary}`);
    if (!want.equals(data)) fail(`${data.length} bytes for ${want.length}`);
    i += 1;
    next();
  });
  ws.on('error', (e) => fail(`error ${JSON.stringify(e.message)}`));
  ws.on('close', (code) => {
    console.log(`closed ${code}`);
    process.exit(i === msgs.length ? 0 : 1);
  });
  setTimeout(() => fail('timeout'), 15000).unref();
} else {
  console.error('usage: deflate_node.js server|client ...');
  process.exit(2);
}
