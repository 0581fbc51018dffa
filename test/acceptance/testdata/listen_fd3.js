// An unmodified-style Node.js HTTP server that listens on an inherited
// socket, fd 3 (systemd socket activation), instead of binding a port.
// Used by listenfds_test.go (C3).
'use strict';
const http = require('http');

const index = process.env.HERD_WORKER_INDEX || '';
const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Connection', 'close');
  res.end(`pid=${process.pid} index=${index}\n`);
});
server.listen({ fd: 3 }, () => {
  console.log(`listen_fd3 pid=${process.pid} index=${index} env_port=${process.env.PORT || ''}` +
    ` listen_fds=${process.env.LISTEN_FDS || ''} listen_pid_ok=${process.env.LISTEN_PID === String(process.pid)}`);
});
