// Prints the key Node's primary builds for each queryServer message read from
// stdin (one JSON object per line), with the formula of
// lib/internal/cluster/primary.js (queryServer).
'use strict';
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter((l) => l !== '');
for (const line of lines) {
  const message = JSON.parse(line);
  const key = `${message.address}:${message.port}:${message.addressType}:` +
              `${message.fd}:${message.index}`;
  process.stdout.write(JSON.stringify(key) + '\n');
}
