// The receiver of the benchmarks, in a process of its own: answers 204 at once (paths under /stall
// only after a delay), counts requests to the paths it is told to, and records arrival times
// (performance clock, comparable across processes) by eventId on request.
import { createServer } from 'node:http';

let count = 0;
let target = Infinity;
let recordArrivals = false;
let pathPrefix = '/';
let stallMs = 5_000;
const arrivals = {};

const server = createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    if (request.url.startsWith('/stall')) setTimeout(() => response.writeHead(204).end(), stallMs).unref();
    else response.writeHead(204).end();
    if (!request.url.startsWith(pathPrefix)) return;
    count++;
    if (recordArrivals) arrivals[JSON.parse(Buffer.concat(chunks).toString()).eventId] = performance.timeOrigin + performance.now();
    if (count >= target) {
      target = Infinity;
      process.send({ type: 'reached', count, at: performance.timeOrigin + performance.now() });
    }
  });
});
server.keepAliveTimeout = 60_000;

process.on('message', (message) => {
  if (message.type === 'expect') {
    count = 0;
    target = message.count;
    recordArrivals = Boolean(message.recordArrivals);
    pathPrefix = message.pathPrefix;
    stallMs = message.stallMs;
    for (const key of Object.keys(arrivals)) delete arrivals[key];
    process.send({ type: 'expecting' });
  }
  if (message.type === 'arrivals') process.send({ type: 'arrivals', arrivals });
  if (message.type === 'stop') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});

server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
