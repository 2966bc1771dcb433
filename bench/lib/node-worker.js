'use strict';
// The Node side of the benchmark: a bull 4.16.5 worker in its own process.
// Usage: node node-worker.js REDIS_URL QUEUE CONCURRENCY
// SIGTERM/SIGINT closes the queue (waits for active jobs) and exits 0.
const Queue = require('bull');

const [url, name, concArg] = process.argv.slice(2);
const concurrency = Number(concArg);
if (!url || !name || !(concurrency > 0)) {
  console.error('usage: node node-worker.js REDIS_URL QUEUE CONCURRENCY');
  process.exit(2);
}

const queue = new Queue(name, url);
queue.on('error', (err) => console.error('node-worker: ' + (err && err.message)));
queue.process('noop', concurrency, async () => ({ ok: true }));

let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  try {
    await queue.close();
    process.exit(0);
  } catch (err) {
    console.error('node-worker: close: ' + (err && err.message));
    process.exit(1);
  }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
