// An Express app with no signal handler of its own. argv[2] is the port.
// /slow?ms=N answers after N ms; / answers the pid.
'use strict';
const express = require('express');

const app = express();
app.get('/slow', (req, res) => {
  setTimeout(() => res.send(String(process.pid)), +(req.query.ms || 0));
});
app.get('/', (req, res) => res.send(String(process.pid)));
app.listen(+process.argv[2]);
