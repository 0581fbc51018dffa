// A cluster worker that reports what it sees of itself, then idles: the IPC
// channel keeps a cluster worker alive (docs/protocol.md §2.2).
'use strict';
const cluster = require('cluster');
const env = (name) => (process.env[name] === undefined ? 'undefined' : process.env[name]);
process.send({
  isWorker: cluster.isWorker,
  isPrimary: cluster.isPrimary,
  id: cluster.worker ? cluster.worker.id : null,
  state: cluster.worker ? cluster.worker.state : null,
  connected: process.connected,
  channelFD: process.channel ? process.channel.fd : null,
  env: [env('NODE_UNIQUE_ID'), env('NODE_CHANNEL_FD'), env('NODE_CHANNEL_SERIALIZATION_MODE')],
});
