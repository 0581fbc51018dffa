// Node's own cluster primary, forking a Go binary as its workers: fork()
// execs process.execPath, so it is pointed at the binary (argv[2]).
// POLICY rr|none, PORT, WORKERS, SCENARIO serve|sigterm|killprimary.
// Prints one JSON array per event.
'use strict';
const cluster = require('cluster');
const http = require('http');

cluster.schedulingPolicy = process.env.POLICY === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
process.execPath = process.argv[2];
cluster.setupPrimary({ exec: 'go-worker', execArgv: [] });

const port = +process.env.PORT;
const n = +process.env.WORKERS || 2;
const log = (...a) => console.log(JSON.stringify(a));
const workers = [];
let up = 0;
let exited = 0;

for (let i = 0; i < n; i++) {
  const w = cluster.fork({ PORT: String(port) });
  workers.push(w);
  w.on('listening', (a) => {
    log('listening', w.id, a.port);
    if (++up === n) run().catch((e) => { log('error', String(e)); process.exit(2); });
  });
  w.on('exit', (code, signal) => {
    log('exit', w.id, code, signal, w.exitedAfterDisconnect);
    if (++exited === n) process.exit(0);
  });
}

function get(path) {
  return new Promise((resolve, reject) => {
    http.get({ port, path, agent: false }, (r) => {
      let b = '';
      r.on('data', (d) => { b += d; });
      r.on('end', () => resolve(b.trim()));
    }).on('error', reject);
  });
}

async function run() {
  switch (process.env.SCENARIO) {
    case 'serve':
      for (let i = 0; i < 4; i++) log('response', await get('/r' + i));
      cluster.disconnect();
      break;
    case 'sigterm':
      workers[0].once('exit', () => cluster.disconnect());
      workers[0].process.kill('SIGTERM');
      break;
    case 'killprimary':
      log('pids', workers.map((w) => w.process.pid));
      process.kill(process.pid, 'SIGKILL');
      break;
  }
}
