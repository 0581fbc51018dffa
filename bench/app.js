'use strict';
// The benchmark's server, the same file in every setup: herd's workers, Node's
// own cluster workers and the single process. X-Pid names the process that
// answered, so the spread of connections over workers can be counted.
//
// / answers at once. /work?ms=N (the mixed workload's slow request) first
// spends N ms of the process's CPU time in a busy loop, blocking the worker
// as a CPU-heavy handler does: CPU time and not wall time, so that a slow
// request costs the same work whatever else the machine runs.
const http = require('node:http');

const port = Number(process.env.BENCH_PORT);
const pid = String(process.pid);

function burn(ms) {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if (used.user + used.system >= ms * 1000) return;
  }
}

http.createServer((q, r) => {
  if (q.url.startsWith('/work')) {
    const ms = Number(new URL(q.url, 'http://x').searchParams.get('ms'));
    if (Number.isFinite(ms) && ms > 0) burn(Math.min(ms, 10000));
  }
  r.setHeader('X-Pid', pid);
  r.end('ok');
}).listen(port, '127.0.0.1');
