'use strict';
// Node's own cluster primary for the benchmark: forks BENCH_WORKERS workers
// of app.js. Node reads NODE_CLUSTER_SCHED_POLICY (rr or none) when the
// cluster module loads; this file only checks that it took effect.
const cluster = require('node:cluster');
const path = require('node:path');

const want = process.env.NODE_CLUSTER_SCHED_POLICY;
const got = cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
if (want && want !== got) {
  console.error(`node_primary: NODE_CLUSTER_SCHED_POLICY=${want} but the policy is ${got}`);
  process.exit(1);
}

const n = Number(process.env.BENCH_WORKERS || 2);
cluster.setupPrimary({ exec: path.join(__dirname, 'app.js') });
for (let i = 0; i < n; i++) cluster.fork();

let stopping = false;
cluster.on('exit', (w, code, signal) => {
  if (!stopping) {
    // Any output on stderr before the stop is reported by the benchmark.
    console.error(`node_primary: worker ${w.process.pid} exited (code ${code}, signal ${signal})`);
  }
  if (stopping && Object.keys(cluster.workers).length === 0) process.exit(0);
});

process.on('SIGTERM', () => {
  stopping = true;
  const workers = Object.values(cluster.workers);
  if (workers.length === 0) process.exit(0);
  for (const w of workers) w.process.kill('SIGTERM');
  setTimeout(() => process.exit(0), 5000).unref();
});
