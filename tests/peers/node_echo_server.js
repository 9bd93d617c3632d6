// Echo WebSocket server (Node `ws`, default settings), a third-party peer for the tests.
//
// Usage: node node_echo_server.js [--deflate]
//
// Listens on 127.0.0.1, port 0, and prints `PORT <n>` once listening. Every message is sent
// back unchanged (text stays text, binary stays binary). Like most servers it answers a Close
// at once. --deflate offers permessage-deflate (RFC 7692) to clients that ask for it.
'use strict';
const { WebSocketServer } = require('ws');

const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate });
wss.on('listening', () => console.log(`PORT ${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
