// A configurable Node.js cluster worker for the Node tests: the app side
// of docs/protocol.md §12's conformance tests and of docs/acceptance.md
// C5, C9 and C11 (nodecluster_test.go), and of the chaos, bind and fault
// tests. It only uses public Node APIs (listen, bind, process.send,
// cluster.worker), except where a test needs a broken worker: then it
// writes to its channel fd (process.channel.fd) directly.
//
// argv[2] is a JSON object:
//   servers        [{kind: "http"|"https"|"udp4"|"udp6", listen: [args of
//                  listen() or bind()]}], listened in order, all at once
//   tls            {key, cert}: PEM file paths for https
//   maxConnections server.maxConnections of every TCP server
//   logConns       write an "conn" event for every connection a server gets
//   big            before listening, process.send a user message this long
//   sendHandle     servers[0] listens first; then the app sends it to the
//                  primary with process.send(msg, server), then the others listen
//   interval       keep a setInterval running (the worker never exits by itself)
//   markerDir      a directory for the *Once actions' marker files
//   action         {"<HERD_WORKER_INDEX>": name}, run once every server
//                  listened: wdisconnect (cluster.worker.disconnect()), wkill
//                  (cluster.worker.kill()), pdisconnect (process.disconnect()),
//                  throwOnce, exit7Once (the first worker of the slot only),
//                  robust (a 3 MB user message, then a line written in 3 pieces)
//
// HTTP routes: / answers the pid; /slow?ms=N answers after N ms; /spin?ms=N
// blocks the event loop N ms, then answers; /boom[?index=I] answers, then
// throws from setImmediate (only the worker of slot I when given; header
// X-Boom says whether it will); /garbage, /oversize, /badack break the
// channel protocol and never answer. UDP: every datagram is answered with
// the pid.
//
// When the channel closes (after herd's disconnect), the app closes its
// servers too, as an app would its exclusive ones (Node's cluster closes
// only the servers it shares with the primary).
//
// Events on stdout, "@@ {json}" lines as node_trace.js writes them, with
// ev "app": what = listening {i, address}, error {i, code}, ready (every
// server listened or failed), req {path}, conn {i, rport}, sent-handle,
// robust-done.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const dgram = require('dgram');
const path = require('path');
const cluster = require('cluster');

const cfg = JSON.parse(process.argv[2] || '{}');
const index = process.env.HERD_WORKER_INDEX || '';
const pid = process.pid;

function emit(o) {
  o.ev = 'app';
  o.pid = pid;
  o.t = Date.now();
  o.index = index;
  const line = Buffer.from('@@ ' + JSON.stringify(o) + '\n');
  let off = 0;
  for (let i = 0; off < line.length && i < 100000; i++) {
    try {
      off += fs.writeSync(1, line, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') return;
    }
  }
}

// rawWrite writes buf to the channel fd, bypassing Node's framing (the fd is
// non-blocking: EAGAIN is retried until herd reads).
function rawWrite(buf) {
  const fd = process.channel.fd;
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, Math.min(buf.length - off, 1 << 16));
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function respond(res) {
  res.setHeader('Connection', 'close');
  res.end(String(pid));
}

function handler(req, res) {
  const u = new URL(req.url, 'http://x');
  const ms = +(u.searchParams.get('ms') || 0);
  if (u.pathname !== '/') emit({ what: 'req', path: req.url });
  switch (u.pathname) {
    case '/slow':
      setTimeout(() => respond(res), ms);
      return;
    case '/spin': {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        // busy: no I/O, no channel reads, no ACKs
      }
      respond(res);
      return;
    }
    case '/boom': {
      const want = u.searchParams.get('index');
      const me = want === null || want === index;
      res.setHeader('X-Boom', me ? 'yes' : 'no');
      respond(res);
      if (me) {
        setImmediate(() => {
          throw new Error('boom after responding');
        });
      }
      return;
    }
    case '/garbage':
      rawWrite(Buffer.from('not json\n'));
      return;
    case '/oversize': {
      // 17 MiB without a newline: past herd's 16 MiB line limit.
      const chunk = Buffer.alloc(1 << 20, 0x61);
      rawWrite(Buffer.from('{"x":"'));
      for (let i = 0; i < 17; i++) rawWrite(chunk);
      return;
    }
    case '/badack':
      // herd sent no handle that waits for an acknowledgement.
      rawWrite(Buffer.from('{"cmd":"NODE_HANDLE_ACK"}\n'));
      return;
  }
  respond(res);
}

const servers = [];
let pending = (cfg.servers || []).length;

function settled() {
  if (--pending === 0) {
    emit({ what: 'ready' });
    setTimeout(runAction, 50);
  }
}

function makeServer(s, i) {
  if (s.kind === 'udp4' || s.kind === 'udp6') {
    const sock = dgram.createSocket(s.kind);
    sock.on('message', (m, rinfo) => sock.send(String(pid), rinfo.port, rinfo.address));
    sock.on('listening', () => {
      emit({ what: 'listening', i, address: sock.address() });
      settled();
    });
    sock.on('error', (e) => {
      emit({ what: 'error', i, code: e.code, message: e.message });
      settled();
    });
    return { start: () => sock.bind(...(s.listen || [])), obj: sock };
  }
  let srv;
  if (s.kind === 'https') {
    srv = https.createServer({ key: fs.readFileSync(cfg.tls.key), cert: fs.readFileSync(cfg.tls.cert) }, handler);
  } else {
    srv = http.createServer(handler);
  }
  if (cfg.maxConnections) srv.maxConnections = cfg.maxConnections;
  if (cfg.logConns) srv.on('connection', (c) => emit({ what: 'conn', i, rport: c.remotePort }));
  srv.on('listening', () => {
    emit({ what: 'listening', i, address: srv.address() });
    settled();
  });
  srv.on('error', (e) => {
    emit({ what: 'error', i, code: e.code, message: e.message });
    settled();
  });
  // With a callback, as apps write it: listen(port, host, cb) is the form
  // that sends backlog:false (docs/protocol.md §5.1).
  return { start: () => srv.listen(...(s.listen || []), () => {}), obj: srv };
}

function runAction() {
  const a = (cfg.action || {})[index];
  const marker = (name) => {
    const p = path.join(cfg.markerDir, `${name}-${index}`);
    if (fs.existsSync(p)) return false;
    fs.writeFileSync(p, String(pid));
    return true;
  };
  switch (a) {
    case 'wdisconnect':
      cluster.worker.disconnect();
      break;
    case 'wkill':
      cluster.worker.kill();
      break;
    case 'pdisconnect':
      process.disconnect();
      break;
    case 'throwOnce':
      if (marker('throw')) {
        setImmediate(() => {
          throw new Error('uncaught, once');
        });
      }
      break;
    case 'exit7Once':
      if (marker('exit7')) process.exit(7);
      break;
    case 'robust':
      // A 3 MB user message (herd's limit is 16 MiB), and once it is
      // written, a line written in 3 pieces 300 ms apart.
      process.send({ big: 'x'.repeat(3000000) }, () => {
        const parts = ['{"split":"ab', 'cd', 'ef"}\n'];
        let k = 0;
        const next = () => {
          rawWrite(Buffer.from(parts[k++]));
          if (k < parts.length) setTimeout(next, 300);
          else setTimeout(() => emit({ what: 'robust-done' }), 100);
        };
        next();
      });
      break;
  }
}

// When the channel goes (after herd's disconnect), close what Node's cluster
// does not: the exclusive servers, bound by the worker itself.
process.on('disconnect', () => {
  for (const s of servers) {
    try {
      s.obj.close();
    } catch (e) {}
  }
});

if (cfg.interval) setInterval(() => {}, 1000);
if (cfg.big) process.send({ big: 'y'.repeat(cfg.big) });

(cfg.servers || []).forEach((s, i) => servers.push(makeServer(s, i)));
if (cfg.sendHandle && servers.length > 0) {
  servers[0].obj.once('listening', () => {
    process.send({ hello: 'a handle from the app' }, servers[0].obj, () => emit({ what: 'sent-handle' }));
    servers.slice(1).forEach((s) => s.start());
  });
  servers[0].start();
} else {
  servers.forEach((s) => s.start());
}
if (pending === 0) {
  emit({ what: 'ready' });
  setTimeout(runAction, 50);
}
