// The textbook crashing cluster worker: an unmodified HTTP server that
// answers every request and, on one request in five, throws once the
// answer has gone out. argv[2] is the port.
'use strict';
const http = require('http');

let served = 0;
http.createServer((req, res) => {
  res.setHeader('Connection', 'close');
  res.end(String(process.pid));
  if (++served % 5 === 0) {
    res.on('finish', () => {
      throw new Error('crash after answering');
    });
  }
}).listen(+process.argv[2]);
