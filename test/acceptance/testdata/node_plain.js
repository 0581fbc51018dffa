// An unmodified Node.js HTTP server (docs/acceptance.md C2, C3): it
// answers every request with its pid and calls listen(PORT) like any app;
// under herd that listen() goes through Node's cluster protocol with herd
// as the primary. Used by nodecluster_test.go.
'use strict';
require('http').createServer((q, r) => r.end(String(process.pid))).listen(+process.argv[2]);
