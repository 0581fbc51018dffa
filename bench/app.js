'use strict';
// The benchmark's server, the same file in every setup: herd's workers, Node's
// own cluster workers and the single process. X-Pid names the process that
// answered, so the spread of connections over workers can be counted.
const http = require('node:http');

const port = Number(process.env.BENCH_PORT);
const pid = String(process.pid);
http.createServer((q, r) => {
  r.setHeader('X-Pid', pid);
  r.end('ok');
}).listen(port, '127.0.0.1');
