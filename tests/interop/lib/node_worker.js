'use strict';
// A Node bull 4.16.5 worker run as a child process by harness.startNodeWorker,
// so tests can kill it with SIGKILL. argv[2] is a JSON spec:
//   { queue, redisUrl, settings, limiter, concurrency, handlers: [names] }
// Every handler sleeps data.ms (if given) and returns {...data, by:'node'}.
// Prints JSON lines: ready, active, completed, failed, stalled.
const Queue = require('bull');

const spec = JSON.parse(process.argv[2]);
const out = o => process.stdout.write(JSON.stringify({ ts: Date.now(), ...o }) + '\n');

const opts = { settings: spec.settings || {} };
if (spec.limiter) opts.limiter = spec.limiter;
const q = new Queue(spec.queue, spec.redisUrl, opts);
q.on('error', err => out({ event: 'error', error: String(err && err.message) }));
q.on('active', job => out({ event: 'active', jobId: String(job.id), name: job.name }));
q.on('completed', job => out({ event: 'completed', jobId: String(job.id) }));
q.on('failed', (job, err) => out({ event: 'failed', jobId: String(job.id), reason: err.message }));
q.on('stalled', job => out({ event: 'stalled', jobId: String(job.id) }));

const handler = async job => {
  const ms = job.data && Number.isInteger(job.data.ms) ? job.data.ms : 0;
  if (ms) await new Promise(r => setTimeout(r, ms));
  return { ...(job.data || {}), by: 'node' };
};

for (const name of spec.handlers || ['*']) q.process(name, spec.concurrency || 1, handler);

(async () => {
  await q.isReady();
  for (;;) {
    // Ready once our own blocking connection carries the worker name (asked
    // on the command connection: the blocking one may sit in BRPOPLPUSH).
    const port = q.bclient.stream && q.bclient.stream.localPort;
    const list = port ? await q.client.client('list') : '';
    if (list.split('\n').some(l => l.includes(`:${port} `) && l.includes(` name=${q.clientName()} `))) break;
    await new Promise(r => setTimeout(r, 20));
  }
  out({ event: 'ready' });
})().catch(err => {
  out({ event: 'fatal', error: String(err && err.stack) });
  process.exit(1);
});

process.on('SIGTERM', async () => {
  await q.close();
  process.exit(0);
});
