// A cluster worker that echoes user messages and reports every handle it
// gets. Commands (user messages):
//   {"block": ms}      busy-wait, so herd's writes pile up in the socket
//   {"quiet": "..."}   reply {"quietLen": n} instead of echoing
//   {"split": true}    write {"split":"yes","n":1} raw to fd 3 in three pieces
// A handle whose message has "conn" is wrapped in a net.Socket that writes
// "conn <n>\n" and ends; any other handle is closed. Either way the worker
// reports {"handle": <msg>, "type": <wrap class>, "flags": <fdinfo flags>}.
'use strict';
const fs = require('fs');
const net = require('net');

function fdFlags(fd) {
  try {
    const m = /flags:\s*([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    return m ? m[1] : null;
  } catch (e) {
    return String(e);
  }
}

process.on('message', (m, h) => {
  if (h) {
    const report = { handle: m, type: h.constructor.name, flags: fdFlags(h.fd) };
    if (m && m.conn !== undefined) {
      const s = new net.Socket({ handle: h, readable: true, writable: true });
      s.end(`conn ${m.conn}\n`);
    } else {
      h.close();
    }
    process.send(report);
    return;
  }
  if (m === null || typeof m !== 'object') {
    process.send(m);
    return;
  }
  if (m.block) {
    const end = Date.now() + m.block;
    while (Date.now() < end);
    process.send({ unblocked: true });
    return;
  }
  if (m.quiet !== undefined) {
    process.send({ quietLen: m.quiet.length });
    return;
  }
  if (m.split === true) {
    fs.writeSync(3, '{"split":');
    setTimeout(() => {
      fs.writeSync(3, '"yes","n":');
      setTimeout(() => fs.writeSync(3, '1}\n'), 50);
    }, 50);
    return;
  }
  process.send(m);
});
