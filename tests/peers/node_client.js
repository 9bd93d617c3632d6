// A Node `ws` client that sends its messages and closes at once, a third-party peer for the
// tests of wsbridge's server side.
//
// Usage: node node_client.js URL MESSAGE...
//
// Sends each MESSAGE as a text message, then Close 1000 at once, without waiting for replies.
// Prints one line per event: `text "..."` for each message that arrives (JSON-encoded), then
// `closed CODE` when the connection has closed (1006: no Close frame), or `error MESSAGE`.
// Exits by itself: ws gives the closing handshake 30 s at most.
'use strict';
const WebSocket = require('ws');

const [url, ...messages] = process.argv.slice(2);
const ws = new WebSocket(url);
ws.on('open', () => {
  for (const m of messages) ws.send(m);
  ws.close(1000);
});
ws.on('message', (data, isBinary) => {
  const text = isBinary ? data.toString('hex') : data.toString();
  console.log(`${isBinary ? 'binary' : 'text'} ${JSON.stringify(text)}`);
});
ws.on('error', (e) => console.log(`error ${JSON.stringify(e.message)}`));
ws.on('close', (code) => console.log(`closed ${code}`));
