'use strict';
// Enqueues JOBS `noop` jobs on queue QUEUE with bull's Queue#addBulk, in
// batches of BATCH (default 1000). Not timed by the benchmark.
// Usage: node enqueue.js REDIS_URL QUEUE JOBS [BATCH]
const Queue = require('bull');

const [url, name, jobsArg, batchArg] = process.argv.slice(2);
const jobs = Number(jobsArg);
const batch = Number(batchArg || 1000);
if (!url || !name || !(jobs > 0) || !(batch > 0)) {
  console.error('usage: node enqueue.js REDIS_URL QUEUE JOBS [BATCH]');
  process.exit(2);
}

(async () => {
  const q = new Queue(name, url);
  try {
    for (let done = 0; done < jobs; ) {
      const n = Math.min(batch, jobs - done);
      const list = [];
      for (let i = 0; i < n; i++) list.push({ name: 'noop', data: {} });
      await q.addBulk(list);
      done += n;
    }
    const waiting = await q.client.llen(q.toKey('wait'));
    if (waiting !== jobs) throw new Error(`expected ${jobs} waiting jobs, found ${waiting}`);
  } finally {
    await q.close();
  }
})().catch((err) => {
  console.error('enqueue: ' + (err && err.stack ? err.stack : err));
  process.exit(1);
});
