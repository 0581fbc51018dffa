// The app sends a handle of its own (docs/protocol.md §12 test 11): an exclusive
// server (bound by the worker itself, no queryServer). Node queues every later
// message behind it until the primary ACKs, so {"after":1} and the queryServer
// of the second, non-exclusive server only arrive if herd ACKed.
'use strict';
const net = require('net');
const srv = net.createServer();
srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
  process.send({ x: 1 }, srv);
  process.send({ after: 1 });
  net.createServer().listen(0);
});
