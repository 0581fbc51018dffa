// A preload (node -r node_trace.js app.js) for nodecluster_test.go: it
// writes, on stdout, one line "@@ {json}" for everything the worker's side of
// Node's cluster channel sees, so a test can assert on the messages herd sent
// and on the fds that came with them, without changing the app:
//
//   {"ev":"start", isWorker, id, state, env_unique, channelFd}   at preload
//   {"ev":"in",  msg, handle}   every internal message received (the
//                               NODE_HANDLE envelope, then its inner message),
//                               logged before Node's own handlers run
//   {"ev":"out", msg, handle}   every message the worker writes (cluster layer
//                               and transport ACKs: process._send is wrapped)
//   {"ev":"user", msg}          user messages from the primary
//   {"ev":"exit", code}         process 'exit'
//
// Every line has pid and t (ms since the epoch). handle describes an fd that
// came with (or went with) a message: the JS wrap's class (TCP, Pipe, UDP),
// the fd number in this process, the open file description's flags from
// /proc/self/fdinfo (octal, O_NONBLOCK is 04000), the /proc/self/fd link,
// getsockname and getpeername, and for TCP the socket's state in /proc/self/net/tcp{,6}
// ("0A" LISTEN; null when the socket is in no table, i.e. bound only),
// all read at once, before the worker itself does anything with the fd.
//
// Node's cluster setup (and its "online" message) runs before preloads, so
// "online" is not seen here; the tests read it on herd's side with strace.
'use strict';
const fs = require('fs');
const cluster = require('cluster');

const pid = process.pid;

function emit(o) {
  o.pid = pid;
  o.t = Date.now();
  const line = Buffer.from('@@ ' + JSON.stringify(o) + '\n');
  // fd 1 is left as it is (process.stdout is never touched, so libuv does
  // not make the shared pipe non-blocking); retry if it is anyway.
  let off = 0;
  for (let i = 0; off < line.length && i < 100000; i++) {
    try {
      off += fs.writeSync(1, line, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') return;
    }
  }
}

function clip(m) {
  let s;
  try {
    s = JSON.stringify(m);
  } catch (e) {
    return { unserialisable: String(e) };
  }
  if (s !== undefined && s.length > 2048) return { clipped: s.length, head: s.slice(0, 200) };
  return m;
}

function tcpState(inode) {
  for (const f of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    let text;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (e) {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const p = line.trim().split(/\s+/);
      if (p.length > 9 && p[9] === inode) return p[3];
    }
  }
  return null;
}

function handleInfo(h, withState) {
  if (!h) return null;
  const info = { type: h.constructor ? h.constructor.name : typeof h };
  if (h._handle && info.type !== 'TCP' && info.type !== 'Pipe' && info.type !== 'UDP') {
    info.wraps = h._handle.constructor ? h._handle.constructor.name : '';
    h = h._handle;
  }
  try {
    info.fd = h.fd;
  } catch (e) {
    info.fd = -1;
  }
  if (typeof info.fd === 'number' && info.fd >= 0) {
    try {
      const m = /flags:\s*([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${info.fd}`, 'utf8'));
      if (m) info.flags = m[1];
    } catch (e) {}
    try {
      info.link = fs.readlinkSync(`/proc/self/fd/${info.fd}`);
    } catch (e) {}
    const m = /^socket:\[(\d+)\]$/.exec(info.link || '');
    if (m && info.type === 'TCP' && withState) info.tcpState = tcpState(m[1]);
  }
  try {
    const o = {};
    if (typeof h.getsockname === 'function' && h.getsockname(o) === 0) info.sockname = o;
  } catch (e) {}
  try {
    const o = {};
    if (typeof h.getpeername === 'function' && h.getpeername(o) === 0) info.peer = o;
  } catch (e) {}
  return info;
}

emit({
  ev: 'start',
  isWorker: cluster.isWorker,
  id: cluster.worker ? cluster.worker.id : null,
  state: cluster.worker ? cluster.worker.state : null,
  env_unique: process.env.NODE_UNIQUE_ID === undefined ? null : process.env.NODE_UNIQUE_ID,
  env_channel: process.env.NODE_CHANNEL_FD === undefined ? null : process.env.NODE_CHANNEL_FD,
  channelFd: process.channel ? process.channel.fd : null,
  index: process.env.HERD_WORKER_INDEX || '',
});

// Prepended: a message is logged before Node's own listeners react to it
// (ACK it, answer it), so the log's order is the order of cause and effect.
process.prependListener('internalMessage', (m, h) => {
  try {
    if (m && m.cmd === 'NODE_CLUSTER' && h) {
      // The inner message of a NODE_HANDLE: its fd was described with it.
      emit({ ev: 'in', msg: clip(m), handle: { type: h.constructor ? h.constructor.name : typeof h } });
      return;
    }
    // The socket's TCP state costs a read of the kernel's TCP tables: only
    // for listening sockets, not for every connection.
    const conn = m && m.msg && m.msg.act === 'newconn';
    emit({ ev: 'in', msg: clip(m), handle: handleInfo(h, !conn) });
  } catch (e) {}
});
process.on('message', (m) => emit({ ev: 'user', msg: clip(m) }));

const send = process._send;
if (typeof send === 'function') {
  process._send = function (message, handle) {
    try {
      emit({ ev: 'out', msg: clip(message), handle: handleInfo(handle, false) });
    } catch (e) {}
    return send.apply(this, arguments);
  };
}

process.on('exit', (code) => emit({ ev: 'exit', code }));
