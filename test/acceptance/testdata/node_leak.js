// A Node HTTP server that leaks: every request to / keeps 2 MB for ever (a
// Buffer filled, so its pages are really used, outside V8's heap as most
// real leaks of payloads are), then answers the pid. /heap answers what
// the worker was given: {"pid", "heap_size_limit", "node_options",
// "worker_memory"}. argv[2] is the port; argv[3], when set, the MB each
// request keeps.
'use strict';
const http = require('http');
const v8 = require('v8');

const keep = [];
const per = (+process.argv[3] || 2) * 1024 * 1024;

http.createServer((req, res) => {
  res.setHeader('Connection', 'close');
  if (req.url === '/heap') {
    res.end(JSON.stringify({
      pid: process.pid,
      heap_size_limit: v8.getHeapStatistics().heap_size_limit,
      node_options: process.env.NODE_OPTIONS || '',
      worker_memory: process.env.HERD_WORKER_MEMORY || '',
    }));
    return;
  }
  keep.push(Buffer.alloc(per, 1));
  res.end(String(process.pid));
}).listen(+process.argv[2]);
