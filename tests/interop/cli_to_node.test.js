'use strict';
// C producer -> Node worker: jobs added by erpq-producer (our CLI) are read
// and processed by Node bull 4.16.5 exactly as if Node had added them.
//
// Needs ERPQ_TEST_REDIS_URL (a throwaway Redis) and ERPQ_BIN_DIR (where
// erpq-producer is); the tests fail, never skip, when they are missing.
// bull comes from tests/interop/node_modules (or NODE_PATH).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const REDIS = process.env.ERPQ_TEST_REDIS_URL;
const BIN_DIR = process.env.ERPQ_BIN_DIR;
const PRODUCER = BIN_DIR ? path.join(BIN_DIR, 'erpq-producer') : null;

function requireEnv() {
  assert.ok(REDIS, 'ERPQ_TEST_REDIS_URL must be set (a throwaway Redis)');
  assert.ok(BIN_DIR, 'ERPQ_BIN_DIR must be set (the directory of erpq-producer)');
  assert.ok(fs.existsSync(PRODUCER), `${PRODUCER} does not exist`);
}

let Queue;
function bull() {
  if (!Queue) Queue = require('bull');
  return Queue;
}

let serial = 0;
function queueName(tag) {
  return `cli2node-${tag}-${process.pid}-${Date.now()}-${++serial}`;
}

const queues = [];
function newQueue(name, opts) {
  const q = new (bull())(name, REDIS, opts);
  queues.push(q);
  return q;
}
after(async () => {
  await Promise.all(queues.map((q) => q.close().catch(() => {})));
});

// Runs erpq-producer; resolves {code, stdout, stderr}.
// The queues here are served by Node workers that erpq's roles file does
// not list: add and add-bulk skip the pre-send checks (--no-validate).
function cli(args, input) {
  const at = args.findIndex(a => a === 'add' || a === 'add-bulk');
  if (at >= 0) args = [...args.slice(0, at + 1), '--no-validate', ...args.slice(at + 1)];
  return new Promise((resolve) => {
    const child = execFile(
      PRODUCER,
      args,
      { env: { ...process.env, ERPQ_REDIS_URL: REDIS, ERPQ_PREFIX: '' }, timeout: 60000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      }
    );
    if (input !== undefined) child.stdin.end(input);
  });
}

// Runs the CLI, expects exit 0 and returns stdout's first line.
async function cliOk(args) {
  const r = await cli(args);
  assert.equal(r.code, 0, `erpq-producer ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.split('\n')[0];
}

// Processes n jobs of any name with concurrency 1; resolves the jobs in
// processing order. fn(job) gives the return value.
function processN(queue, n, fn, ms = 30000) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(
      () => reject(new Error(`only ${seen.length} of ${n} jobs were processed`)),
      ms
    );
    queue.process('*', 1, async (job) => {
      seen.push(job);
      if (seen.length === n) {
        clearTimeout(timer);
        setImmediate(() => resolve(seen));
      }
      return fn ? fn(job) : undefined;
    });
  });
}

test('environment: ERPQ_TEST_REDIS_URL and ERPQ_BIN_DIR are set', () => {
  requireEnv();
});

test('a plain job is processed by Node with its data and default opts; the id follows K(id)', async () => {
  requireEnv();
  const name = queueName('plain');
  const q = newQueue(name);
  const before = Date.now();
  const id = await cliOk(['add', name, 'invoice', '--data', '{"customer":"ACME","lines":[1,2,3],"note":"é/x"}']);
  assert.equal(id, '1');
  assert.equal(await q.client.get(`bull:${name}:id`), id);

  const stored = await q.getJob(id);
  assert.equal(stored.name, 'invoice');
  assert.deepEqual(stored.data, { customer: 'ACME', lines: [1, 2, 3], note: 'é/x' });
  assert.deepEqual(JSON.parse(JSON.stringify(stored.opts)), { attempts: 1, delay: 0, timestamp: stored.timestamp });
  assert.ok(stored.timestamp >= before && stored.timestamp <= Date.now());
  assert.equal(await stored.getState(), 'waiting');

  // Node's own add continues the same counter.
  const nodeJob = await q.add('invoice', { from: 'node' });
  assert.equal(nodeJob.id, '2');
  assert.equal(await cliOk(['add', name, 'invoice']), '3');

  const done = processN(q, 3, (job) => ({ seen: job.id }));
  const jobs = await done;
  assert.deepEqual(
    jobs.map((j) => j.id),
    ['1', '2', '3']
  );
  const j1 = jobs[0];
  assert.deepEqual(j1.data, { customer: 'ACME', lines: [1, 2, 3], note: 'é/x' });
  assert.equal(j1.opts.attempts, 1);
  await new Promise((r) => setTimeout(r, 200));
  const fin = await q.getJob('1');
  assert.equal(await fin.getState(), 'completed');
  assert.deepEqual(fin.returnvalue, { seen: '1' });
});

test('options the CLI stores are the ones Node would store', async () => {
  requireEnv();
  const name = queueName('opts');
  const q = newQueue(name);
  const opts = {
    removeOnComplete: true,
    attempts: '3',
    backoff: 1000,
    timeout: 5000,
    removeOnFail: { age: 60, count: 5 },
  };
  const id = await cliOk(['add', name, 'x', '--opts', JSON.stringify(opts)]);
  const ours = await q.client.hget(`bull:${name}:${id}`, 'opts');
  const theirs = await q.add('x', {}, opts);
  const node = await q.client.hget(`bull:${name}:${theirs.id}`, 'opts');
  // Same keys, values and order as JSON.stringify of bull's Job opts.
  const norm = (s) => s.replace(/"timestamp":\d+/, '"timestamp":T');
  assert.equal(norm(ours), norm(node));
  const job = await q.getJob(id);
  assert.equal(job.opts.attempts, 3);
  assert.deepEqual(job.opts.backoff, { type: 'fixed', delay: 1000 });
});

test('a custom job id, and a duplicate add that changes nothing', async () => {
  requireEnv();
  const name = queueName('custom');
  const q = newQueue(name);
  assert.equal(await cliOk(['add', name, 'c', '--data', '{"v":1}', '--opts', '{"jobId":"order-17"}']), 'order-17');
  assert.equal(await cliOk(['add', name, 'c', '--data', '{"v":2}', '--opts', '{"jobId":"order-17"}']), 'order-17');
  // Node sees the duplicate too: its add returns the same id and keeps the data.
  const dup = await q.add('c', { v: 3 }, { jobId: 'order-17' });
  assert.equal(dup.id, 'order-17');
  assert.equal(await q.client.get(`bull:${name}:id`), '3');
  const [job] = await processN(q, 1);
  assert.equal(job.id, 'order-17');
  assert.deepEqual(job.data, { v: 1 });
  assert.equal(job.opts.jobId, 'order-17');
  const counts = await q.getJobCounts();
  assert.equal(counts.waiting, 0);
});

test('a delayed job is promoted by the Node worker on time', async () => {
  requireEnv();
  const name = queueName('delayed');
  const q = newQueue(name);
  const id = await cliOk(['add', name, 'later', '--data', '{"d":1}', '--opts', '{"delay":1500}']);
  const stored = await q.getJob(id);
  assert.equal(await stored.getState(), 'delayed');
  assert.equal(stored.delay, 1500);
  assert.equal(stored.opts.delay, 1500);
  const score = Number(await q.client.zscore(`bull:${name}:delayed`, id));
  assert.equal(score, (stored.timestamp + 1500) * 4096 + (Number(id) & 0xfff));
  const [job] = await processN(q, 1);
  assert.equal(job.id, id);
  assert.ok(job.processedOn - job.timestamp >= 1500, `processed after ${job.processedOn - job.timestamp} ms`);
  assert.deepEqual(job.data, { d: 1 });
});

// Adds the same sequence through the CLI and through Node on two queues and
// returns both processing orders.
async function orderOf(tag, seq) {
  const ours = queueName(`${tag}-c`);
  const theirs = queueName(`${tag}-n`);
  const qc = newQueue(ours);
  const qn = newQueue(theirs);
  for (const [jobName, opts] of seq) {
    await cliOk(['add', ours, jobName, '--opts', JSON.stringify(opts)]);
    await qn.add(jobName, {}, opts);
  }
  const [a, b] = await Promise.all([processN(qc, seq.length), processN(qn, seq.length)]);
  return [a.map((j) => j.name), b.map((j) => j.name)];
}

test('priority order matches Node', async () => {
  requireEnv();
  const [c, n] = await orderOf('prio', [
    ['p0', {}],
    ['p5', { priority: 5 }],
    ['p1', { priority: 1 }],
    ['p5b', { priority: 5 }],
    ['p1b', { priority: 1 }],
    ['p0b', {}],
  ]);
  assert.deepEqual(c, ['p1', 'p1b', 'p5', 'p5b', 'p0', 'p0b']);
  assert.deepEqual(c, n);
});

test('lifo order matches Node', async () => {
  requireEnv();
  const [c, n] = await orderOf('lifo', [
    ['a', {}],
    ['b', {}],
    ['c', { lifo: true }],
    ['d', { lifo: true, priority: 0 }],
    ['e', { priority: 2 }],
  ]);
  assert.deepEqual(c, n);
  assert.equal(c[0], 'e');
});

test('an add while paused lands in paused; Node processes it after resume', async () => {
  requireEnv();
  const name = queueName('paused');
  const q = newQueue(name);
  const paused = JSON.parse(await cliOk(['pause', name]));
  assert.equal(paused.paused, true);
  assert.equal(await q.isPaused(), true);
  const id = await cliOk(['add', name, 'p', '--data', '{"x":1}']);
  const counts = await q.getJobCounts();
  assert.equal(counts.waiting, 0);
  assert.equal(counts.paused, 1);
  assert.deepEqual(await q.client.lrange(`bull:${name}:paused`, 0, -1), [id]);
  const done = processN(q, 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await q.getJobCounts()).paused, 1, 'a paused job must not run');
  await cliOk(['resume', name]);
  assert.equal(await q.isPaused(), false);
  const [job] = await done;
  assert.equal(job.id, id);
  assert.deepEqual(job.data, { x: 1 });
});

test('a Node Queue sees global:waiting for our add', async () => {
  requireEnv();
  const name = queueName('events');
  const q = newQueue(name);
  const got = new Promise((resolve) => q.on('global:waiting', (jobId) => resolve(jobId)));
  await q._registerEvent('global:waiting');
  const id = await cliOk(['add', name, 'e']);
  const seen = await Promise.race([got, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
  assert.equal(seen, id);
});

test('a hash-tagged prefix works with a Node queue of that prefix', async () => {
  requireEnv();
  const name = queueName('tag');
  const q = newQueue(name, { prefix: '{erp}' });
  const id = await cliOk(['--prefix', '{erp}', 'add', name, 't', '--data', '{"t":1}']);
  const [job] = await processN(q, 1);
  assert.equal(job.id, id);
  assert.deepEqual(job.data, { t: 1 });
});

test('add --wait prints what a Node worker returns, and exits 1 when it throws', async () => {
  requireEnv();
  const name = queueName('wait');
  const q = newQueue(name);
  q.process('*', 1, async (job) => {
    if (job.name === 'bad') throw new Error('nope: ' + job.data.n);
    return { doubled: job.data.n * 2 };
  });
  const ok = await cli(['add', name, 'good', '--data', '{"n":21}', '--wait', '--timeout', '30']);
  assert.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.deepEqual(JSON.parse(lines[1]), { doubled: 42 });
  const bad = await cli(['add', name, 'bad', '--data', '{"n":7}', '--wait', '--timeout', '30']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /nope: 7/);
});

test('add-bulk jobs are processed by Node in order', async () => {
  requireEnv();
  const name = queueName('bulk');
  const q = newQueue(name);
  const lines = [];
  for (let i = 0; i < 5; i++) lines.push(JSON.stringify({ name: 'b', data: { i } }));
  const r = await cli(['add-bulk', name, '-'], lines.join('\n') + '\n');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['1', '2', '3', '4', '5']);
  const jobs = await processN(q, 5);
  assert.deepEqual(
    jobs.map((j) => j.data.i),
    [0, 1, 2, 3, 4]
  );
});

test('a CLI-added repeatable has the ids Node computes and continues under a Node worker', async () => {
  requireEnv();
  const name = queueName('repeat');
  const q = newQueue(name);
  // Same repeat key and first id as Node's own Queue.add (a duplicate).
  const hourly = { repeat: { every: 3600000 } };
  const id = await cliOk(['add', name, 'hourly', '--data', '{"h":1}', '--opts', JSON.stringify(hourly)]);
  assert.match(id, /^repeat:[0-9a-f]{32}:\d+$/);
  const nodeJob = await q.add('hourly', { h: 2 }, hourly);
  assert.equal(nodeJob.id, id);
  let reps = await q.getRepeatableJobs();
  assert.equal(reps.length, 1);
  assert.equal(reps[0].key, 'hourly:::3600000');
  const stored = await q.getJob(id);
  assert.deepEqual(stored.data, { h: 1 });
  assert.equal(stored.opts.repeat.count, 1);
  assert.equal(stored.opts.repeat.key, 'hourly:::3600000');

  // A fast chain: Node picks up our first occurrence and schedules the next.
  const every = { repeat: { every: 1000, limit: 2 } };
  const first = await cliOk(['add', name, 'tick', '--opts', JSON.stringify(every)]);
  const [md5, ms] = first.split(':').slice(1);
  const jobs = await processN(q, 2, undefined, 15000);
  assert.deepEqual(
    jobs.map((j) => j.id),
    [first, `repeat:${md5}:${Number(ms) + 1000}`]
  );
  assert.equal(jobs[1].opts.repeat.count, 2);

  // remove-repeatable stops the hourly chain for Node too.
  const r = JSON.parse(await cliOk(['remove-repeatable', name, 'hourly', '--repeat', JSON.stringify(hourly.repeat)]));
  assert.equal(r.removed, true);
  reps = await q.getRepeatableJobs();
  assert.deepEqual(
    reps.map((x) => x.key),
    ['tick:::1000']
  );
  assert.equal(await q.getJob(id), null);
});
