// A WebSocket server (the ws package) whose SIGTERM handler closes every
// client with 1001 (going away) and exits 0 once they are gone. argv[2] is
// the port. Every message is echoed with the pid in front.
'use strict';
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ port: +process.argv[2] });
wss.on('connection', (ws) => {
  ws.on('message', (m) => ws.send(process.pid + ' ' + m));
  ws.send('hello ' + process.pid);
});
process.on('SIGTERM', () => {
  if (wss.clients.size === 0) process.exit(0);
  for (const ws of wss.clients) {
    ws.on('close', () => {
      if (wss.clients.size === 0) process.exit(0);
    });
    ws.close(1001, 'server going away');
  }
});
