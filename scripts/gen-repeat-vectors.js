#!/usr/bin/env node
// Generates tests/unit/repeat_vectors.json by running bull 4.16.5's own
// repeatable-job code (Queue.add with a repeat option, the worker-side
// nextRepeatableJob, removeRepeatable and removeRepeatableByKey) against a
// fake queue that records what would be written to Redis.
//
// Usage: node scripts/gen-repeat-vectors.js [bull dir] > tests/unit/repeat_vectors.json
// The bull directory may also be given in BULL_DIR; it defaults to
// /tmp/bullsrc/node_modules/bull (in the repository the test peer lives
// under tests/interop/node_modules/bull).  The vectors are made with TZ=UTC;
// the C test sets TZ=UTC as well, since repeat jobs without a tz use the
// process's local zone.
//
// Each vector is one of
//   {op: "compute", name, opts (JSON text), now, expect: {kind: "next", key,
//    jobId, next, delay, opts (JSON text as stored)}}, or kind "none", or
//    kind "error" with a message;
//   {op: "remove", name, repeat, key, jobId} (removeRepeatable);
//   {op: "removeByKey", key, jobId}.
'use strict';

process.env.TZ = 'UTC';

const path = require('path');
const dir = path.resolve(process.argv[2] || process.env.BULL_DIR ||
  '/tmp/bullsrc/node_modules/bull');
const Queue = require(path.join(dir, 'lib/queue'));
const Job = require(path.join(dir, 'lib/job'));

let NOW = 0;
Date.now = () => NOW;

let created = null;
Job.create = function(queue, name, data, opts) {
  const job = new Job(queue, name, data, opts);
  created = job.toData();
  return Promise.resolve(job);
};

function fakeQueue() {
  const q = Object.create(Queue.prototype);
  q.keys = { repeat: 'bull:q:repeat', delayed: 'bull:q:delayed', '': 'bull:q:' };
  q.zadds = [];
  q.client = {
    zadd: (k, score, member) => {
      q.zadds.push([score, member]);
      return Promise.resolve(1);
    },
    zscore: () => Promise.resolve('1'),
    removeRepeatable: (...args) => {
      q.removed = args;
      return Promise.resolve(0);
    }
  };
  q.isReady = () => Promise.resolve(q);
  q.toKey = (s) => 'bull:q:' + s;
  q.limiter = undefined;
  q.defaultJobOptions = undefined;
  return q;
}

// Runs fn (which calls bull) at time now and describes what it created.
async function run(now, fn) {
  NOW = now;
  created = null;
  try {
    await fn();
  } catch (e) {
    return { kind: 'error', message: e.message };
  }
  if (!created) return { kind: 'none' };
  const opts = JSON.parse(created.opts);
  return {
    kind: 'next',
    key: opts.repeat.key,
    jobId: opts.jobId,
    next: opts.prevMillis,
    delay: opts.delay,
    opts: created.opts
  };
}

// Deterministic jitter.
let seed = 12345;
function rand() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

const vectors = [];

// The first add through Queue.add, then up to `steps` worker steps, each
// taking the previous job's stored opts at a time around its due time.
async function chain(name, opts, now, steps, gaps) {
  const q = fakeQueue();
  const input = JSON.stringify(opts);
  const first = await run(now, () =>
    name === undefined ? q.add({ x: 1 }, JSON.parse(input)) : q.add(name, { x: 1 }, JSON.parse(input)));
  vectors.push({ op: 'compute', name: name === undefined ? '__default__' : name, opts: input, now,
    expect: first });
  let prev = first;
  for (let i = 0; i < steps && prev.kind === 'next'; i++) {
    const gap = gaps ? gaps[i % gaps.length] : Math.floor(rand() * 5000) - 1000;
    const t = prev.next + gap;
    const stored = prev.opts;
    const jobName = name === undefined ? '__default__' : name;
    const res = await run(t, () => {
      const job = Job.fromJSON(q, { name: jobName, data: '{"x":1}', opts: stored }, prev.jobId);
      return q.nextRepeatableJob(job.name, job.data, job.opts);
    });
    vectors.push({ op: 'compute', name: jobName, opts: stored, now: t, expect: res });
    prev = res;
  }
}

// One worker-side step on hand-written stored opts.
async function step(name, stored, now) {
  const q = fakeQueue();
  const text = JSON.stringify(stored);
  const res = await run(now, () => {
    const job = Job.fromJSON(q, { name, data: '{}', opts: text }, 'x');
    return q.nextRepeatableJob(job.name, job.data, job.opts);
  });
  vectors.push({ op: 'compute', name, opts: text, now, expect: res });
}

async function removal(name, repeat) {
  const q = fakeQueue();
  await q.removeRepeatable(name, JSON.parse(JSON.stringify(repeat)));
  const [, , jobId, key] = q.removed;
  vectors.push({ op: 'remove', name, repeat: JSON.stringify(repeat), key, jobId });
  const q2 = fakeQueue();
  await q2.removeRepeatableByKey(key);
  vectors.push({ op: 'removeByKey', key, jobId: q2.removed[2] });
}

const T0 = Date.UTC(2025, 2, 8, 23, 59, 58, 123); // Before the US DST change.
const T1 = Date.UTC(2025, 9, 26, 0, 30, 0, 0); // Around the EU DST change.

async function main() {
  // every
  await chain('every1s', { repeat: { every: 1000 } }, T0, 4);
  await chain('every5s', { repeat: { every: 5000 }, jobId: 'fixed-id' }, T0, 3);
  await chain('every-limit', { repeat: { every: 60000, limit: 3 } }, T0, 5);
  await chain('every-odd', { repeat: { every: 7 } }, T0 + 5, 3);
  await chain('every-day', { repeat: { every: 86400000 }, attempts: 3, backoff: 1000 }, T0, 2,
    [0, 3 * 86400000]);
  await chain('every-end', { repeat: { every: 1000, endDate: T0 + 3500 } }, T0, 6, [0, 100, 999]);
  await chain('every-end-iso', { repeat: { every: 2000, endDate: new Date(T0 + 5000).toISOString() } },
    T0, 6, [0]);
  await chain('every-numid', { repeat: { every: 1000 }, jobId: 42 }, T0, 2);
  await chain(undefined, { repeat: { every: 3000 } }, T0, 2);
  await chain('every-exact', { repeat: { every: 1000 } }, Date.UTC(2025, 0, 1), 2, [0]);
  await chain('every-behind', { repeat: { every: 10000 } }, T0, 3, [-4000, 60000, -1]);

  // cron, with and without zones
  await chain('cron-local', { repeat: { cron: '*/5 * * * * *' } }, T0, 4);
  await chain('cron-utc', { repeat: { cron: '0 * * * *', tz: 'UTC' } }, T0, 3);
  await chain('cron-ny', { repeat: { cron: '30 2 * * *', tz: 'America/New_York' } }, T0, 4,
    [0, 1000, 3600000]);
  await chain('cron-ny-hourly', { repeat: { cron: '0 * * * *', tz: 'America/New_York' } },
    Date.UTC(2025, 2, 9, 5, 30), 4, [0]);
  await chain('cron-paris', { repeat: { cron: '0 2 * * *', tz: 'Europe/Paris' } }, T1, 3, [0]);
  await chain('cron-paris-30', { repeat: { cron: '30 * * * *', tz: 'Europe/Paris' } },
    Date.UTC(2025, 9, 25, 23, 45), 5, [0]);
  await chain('cron-kolkata', { repeat: { cron: '0 9 * * 1-5', tz: 'Asia/Kolkata' }, priority: 5 },
    T0, 3);
  await chain('cron-kathmandu', { repeat: { cron: '15 0 L * *', tz: 'Asia/Kathmandu' } }, T0, 3, [0]);
  await chain('cron-lordhowe', { repeat: { cron: '0 2 * * *', tz: 'Australia/Lord_Howe' } },
    Date.UTC(2025, 3, 4, 12), 3, [0]);
  await chain('cron-nth', { repeat: { cron: '0 8 * * 1#2', tz: 'Europe/London' } }, T0, 3, [0]);
  await chain('cron-lastfri', { repeat: { cron: '0 17 * * 5L', tz: 'UTC' } }, T0, 3, [0]);
  await chain('cron-6', { repeat: { cron: '10-40/7 * * * * *', tz: 'UTC' } }, T0, 4, [0, 1, 999]);
  await chain('cron-limit', { repeat: { cron: '* * * * *', tz: 'UTC', limit: 2 } }, T0, 4, [0]);
  await chain('cron-jobid', { repeat: { cron: '0 0 * * *', tz: 'Asia/Kolkata' }, jobId: 'daily' },
    T0, 2, [0]);
  await chain('cron-start', { repeat: { cron: '0 * * * *', tz: 'UTC', startDate: T0 + 86400000 } },
    T0, 2, [0]);
  await chain('cron-start-iso', { repeat: { cron: '*/10 * * * *', tz: 'UTC',
    startDate: '2025-03-10T12:00:00.000Z' } }, T0, 2, [0]);
  await chain('cron-start-past', { repeat: { cron: '*/10 * * * *', tz: 'UTC',
    startDate: '2020-01-01T00:00:00Z' } }, T0, 1, [0]);
  await chain('cron-end', { repeat: { cron: '0 * * * *', tz: 'UTC', endDate: T0 + 2 * 3600000 } },
    T0, 4, [0]);
  await chain('cron-end-iso', { repeat: { cron: '*/20 * * * *', tz: 'Europe/London',
    endDate: '2025-03-09T00:45:00Z' } }, T0, 4, [0]);
  await chain('cron-utc-flag', { repeat: { cron: '0 0 * * *', tz: 'Asia/Tokyo', utc: true } }, T0, 2,
    [0]);
  await chain('cron-offset-tz', { repeat: { cron: '0 0 * * *', tz: 330 } }, T0, 2, [0]);
  await chain('cron-names', { repeat: { cron: '0 12 * JAN-MAR mon,wed', tz: 'UTC' } }, T0, 3, [0]);
  await chain('cron-dom-dow', { repeat: { cron: '0 0 13 * FRI', tz: 'UTC' } }, T0, 3, [0]);
  await chain('cron-never', { repeat: { cron: '0 0 31 4,6 *', tz: 'UTC' } }, T0, 1);
  await chain('cron-yearly', { repeat: { cron: '@yearly', tz: 'UTC' } }, T0, 2, [0]);
  await chain('ünïcødé name', { repeat: { every: 1000 }, jobId: 'id/with:colon' }, T0, 1);

  // Options that bull's defaults and defaultsDeep rewrite.
  await chain('opts1', {
    attempts: '4', backoff: { type: 'exponential', delay: 500 }, removeOnComplete: true,
    repeat: { cron: '*/30 * * * * *', tz: 'UTC', extra: { a: 1, b: [1, 2] } },
    delay: 99999, timestamp: 5, lifo: false, timeout: 1000, meta: { z: 1, 10: 'ten', a: 2 }, 7: 'seven'
  }, T0, 2, [0]);
  await chain('opts2', { backoff: 0, attempts: 2.7, repeat: { every: 2000, count: 5, key: 'stale' } },
    T0, 1, [0]);
  await chain('opts3', { backoff: null, repeat: { every: 2000 }, prevMillis: T0 + 10000 }, T0, 1, [0]);
  await chain('opts4', { backoff: '250', attempts: null, repeat: { every: 2000 }, stackTraceLimit: 3 },
    T0, 1, [0]);

  // Errors, as bull throws them.
  await chain('both', { repeat: { cron: '* * * * *', every: 1000 } }, T0, 0);
  await chain('bad-cron', { repeat: { cron: '61 * * * *' } }, T0, 0);
  await chain('bad-tz', { repeat: { cron: '* * * * *', tz: 'Mars/Base' } }, T0, 0);
  await chain('feb30', { repeat: { cron: '0 0 30 2 *', tz: 'UTC' } }, T0, 0);

  // Stored opts written by hand (a worker meeting jobs from other producers).
  await step('hand', { repeat: { every: 1000, count: 9, limit: 10, key: 'k' }, prevMillis: T0 },
    T0 + 500);
  await step('hand', { repeat: { every: 1000, count: 10, limit: 10 }, prevMillis: T0 }, T0 + 500);
  await step('hand', { repeat: { every: 1000, endDate: T0 }, prevMillis: T0 }, T0 + 1);
  await step('hand', { repeat: { every: 1000, limit: null } }, T0);
  await step('hand', { repeat: { every: 1000, endDate: null } }, T0);
  await step('hand', { repeat: { cron: '0 0 1 1 *', tz: 'UTC', endDate: '2025-06-01' } }, T0);
  await step('hand', { repeat: { cron: '0 0 1 1 *', tz: 'UTC', endDate: '2026-06-01' } }, T0);
  await step('hand', { jobId: 'repeat:abc:1', repeat: { cron: '0 * * * *', tz: 'UTC', jobId: 'mine' },
    prevMillis: T0 + 3600000 }, T0);

  // Removal.
  await removal('every1s', { every: 1000 });
  await removal('cron-ny', { cron: '30 2 * * *', tz: 'America/New_York' });
  await removal('cron-jobid', { cron: '0 0 * * *', tz: 'Asia/Kolkata', jobId: 'daily' });
  await removal('cron-end', { cron: '0 * * * *', tz: 'UTC', endDate: T0 + 2 * 3600000 });
  await removal('__default__', { every: 5000, jobId: 7, endDate: '2030-01-01T00:00:00.000Z' });

  process.stdout.write(JSON.stringify(vectors, null, 1) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
