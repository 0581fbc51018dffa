// An ordinary Node.js HTTP server: nothing in it knows herd. Under herd
// (HERD_SCHED_POLICY=rr) its listen(8080) goes through Node's own cluster
// code, with herd as the primary that owns the port and hands each
// connection to the next free worker. Every answer names the worker's pid,
// in the body and in an X-Pid header.
'use strict';
const http = require('node:http');

http.createServer((req, res) => {
  res.setHeader('X-Pid', String(process.pid));
  res.end(`hello from pid ${process.pid}\n`);
}).listen(8080);
