// A Node HTTP server for herd's lifecycle tests. argv[2] is the port;
// with argv[3] = "sigterm" the app installs a SIGTERM handler that answers
// every held request with "handler <pid>", then exits 0 (its shutdown path,
// as apps that close database pools or WebSocket clients have).
//
// Routes: / answers the pid; /hold keeps the request open (only the SIGTERM
// handler answers it); /slow?ms=N answers after N ms; /exit?code=N answers,
// then exits with N; /pdisconnect answers, then calls process.disconnect();
// /leave answers, then calls cluster.worker.disconnect() (the worker says it
// is leaving). Events go to stdout as "@@ {json}" lines: held {pid, n}.
'use strict';
const http = require('http');
const cluster = require('cluster');

const port = +process.argv[2];
const withHandler = process.argv[3] === 'sigterm';
const held = [];

function emit(o) {
  o.pid = process.pid;
  process.stdout.write('@@ ' + JSON.stringify(o) + '\n');
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  res.setHeader('Connection', 'close');
  switch (u.pathname) {
    case '/hold':
      held.push(res);
      emit({ what: 'held', n: held.length });
      return;
    case '/slow':
      setTimeout(() => res.end(String(process.pid)), +(u.searchParams.get('ms') || 0));
      return;
    case '/exit':
      res.end(String(process.pid), () => process.exit(+(u.searchParams.get('code') || 0)));
      return;
    case '/pdisconnect':
      res.end(String(process.pid), () => process.disconnect());
      return;
    case '/leave':
      res.end(String(process.pid), () => cluster.worker.disconnect());
      return;
  }
  res.end(String(process.pid));
});
server.listen(port);

if (withHandler) {
  process.on('SIGTERM', () => {
    emit({ what: 'sigterm', held: held.length });
    let left = held.length;
    if (left === 0) process.exit(0);
    for (const res of held.splice(0)) {
      res.end('handler ' + process.pid, () => {
        if (--left === 0) process.exit(0);
      });
    }
  });
}
