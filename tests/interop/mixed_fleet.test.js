'use strict';
// Node bull 4.16.5 workers and erpq-worker on the same queue.
const { test, after } = require('node:test');
const h = require('./lib/harness');
const { assert } = h;

h.env(); // fails the file (not skips) without ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL
const r = h.redis();
after(() => h.cleanup());

const FAST = ['--stalled-interval', '1000', '--lock-duration', '2000'];
const NODE_FAST = { stalledInterval: 1000, lockDuration: 2000, maxStalledCount: 1 };

test('2,000 jobs shared by a Node worker and our worker are each processed exactly once', async t => {
  const q = h.qname('fleet');
  const N = 2000;
  const P = h.queue(q);
  const completedEvents = new h.Counter();
  await h.onGlobal(P, 'global:completed', id => completedEvents.inc(id));
  const stalled = [];
  await h.onGlobal(P, 'global:stalled', id => stalled.push(id));

  const w = await h.startWorker({ queue: q, concurrency: 4 });
  t.after(() => w.kill9());
  const nodeSeen = [];
  const NW = h.queue(q, { settings: { stalledInterval: 5000 } });
  const handler = async job => {
    nodeSeen.push(String(job.id));
    if (job.name === 'sleep') await h.sleep(job.data.ms);
    return { ...job.data, by: 'node' };
  };
  NW.process('echo', 2, handler);
  NW.process('sleep', 2, handler);

  const specs = [];
  for (let i = 0; i < N; i++) {
    specs.push(i % 5 === 0
      ? { name: 'sleep', data: { uid: `u${i}`, ms: 1 + (i % 3) } }
      : { name: 'echo', data: { uid: `u${i}`, n: i } });
  }
  const ids = [];
  for (let i = 0; i < N; i += 250) {
    for (const j of await P.addBulk(specs.slice(i, i + 250))) ids.push(String(j.id));
  }
  assert.equal(new Set(ids).size, N);
  await h.waitFor(async () => (await r.zcard(h.key(q, 'completed'))) === N, {
    timeout: 90000, interval: 200,
    message: async () => `all ${N} completed: ${JSON.stringify(await h.counts(r, q))}`,
  });
  await h.waitFor(() => completedEvents.size === N, { timeout: 10000, message: 'a global:completed per job' });
  await NW.close();

  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: N, failed: 0, priority: 0 });
  const cIds = h.activeIds(w, q);
  assert.equal(new Set(cIds).size, cIds.length, 'our worker started no job twice');
  assert.equal(new Set(nodeSeen).size, nodeSeen.length, 'Node started no job twice');
  const cSet = new Set(cIds);
  for (const id of nodeSeen) assert.ok(!cSet.has(id), `job ${id} processed by both`);
  assert.equal(cIds.length + nodeSeen.length, N, `C ${cIds.length} + Node ${nodeSeen.length} = ${N}`);
  assert.ok(cIds.length > 0 && nodeSeen.length > 0, `both workers took jobs (C ${cIds.length}, Node ${nodeSeen.length})`);

  // Every hash is consistent with who processed it.
  const nodeSet = new Set(nodeSeen);
  const pipe = r.pipeline();
  for (const id of ids) pipe.hgetall(h.key(q, id));
  const hashes = (await pipe.exec()).map(([e, v]) => v);
  hashes.forEach((hash, k) => {
    const id = ids[k];
    const spec = specs[k];
    assert.ok(Number(hash.finishedOn) >= Number(hash.processedOn) && Number(hash.processedOn) >= Number(hash.timestamp),
      `job ${id} timestamps ${hash.timestamp}/${hash.processedOn}/${hash.finishedOn}`);
    assert.equal(hash.attemptsMade, undefined, `job ${id} attemptsMade`);
    assert.equal(hash.stalledCounter, undefined, `job ${id} stalledCounter`);
    const rv = JSON.parse(hash.returnvalue);
    if (nodeSet.has(id)) assert.deepEqual(rv, { ...spec.data, by: 'node' }, `job ${id} returnvalue`);
    else if (spec.name === 'echo') assert.deepEqual(rv, spec.data, `job ${id} returnvalue`);
    else assert.deepEqual(rv, { slept: spec.data.ms }, `job ${id} returnvalue`);
  });
  for (const id of ids) assert.equal(completedEvents.n(id), 1, `global:completed count of ${id}`);
  assert.deepEqual(stalled, [], 'no job stalled');
});

/** Adds a sleep job while only our worker runs, waits until it is active there, kills -9. */
async function startOnCAndKill(q, P, ms) {
  const w = await h.startWorker({ queue: q, args: FAST });
  const job = await P.add('sleep', { ms });
  await w.waitLog('job.active', { jobId: String(job.id) });
  await w.kill9();
  assert.equal((await r.lrange(h.key(q, 'active'), 0, -1)).includes(String(job.id)), true, 'left in active');
  return job;
}

test('kill -9 our worker mid-job: a Node worker recovers and completes it (stalledCounter 1)', async t => {
  const q = h.qname('c-kill');
  const P = h.queue(q);
  const stalled = [];
  await h.onGlobal(P, 'global:stalled', id => stalled.push(String(id)));
  const job = await startOnCAndKill(q, P, 5000);
  const nw = await h.startNodeWorker({ queue: q, settings: NODE_FAST, handlers: ['sleep'] });
  t.after(() => nw.kill9());
  const hash = await h.waitFinished(r, q, job.id, 'completed', 20000);
  assert.equal(hash.stalledCounter, '1');
  assert.deepEqual(JSON.parse(hash.returnvalue), { ms: 5000, by: 'node' });
  assert.deepEqual(stalled, [String(job.id)]);
  assert.equal(nw.events('active', { jobId: String(job.id) }).length, 1);
  assert.equal((await h.counts(r, q)).active, 0);
});

test('kill -9 our worker twice on the same job: it fails as stalled more than allowable limit', async t => {
  const q = h.qname('c-kill2');
  const P = h.queue(q);
  const stalled = [];
  const failed = [];
  await h.onGlobal(P, 'global:stalled', id => stalled.push(String(id)));
  await h.onGlobal(P, 'global:failed', (id, val) => failed.push([String(id), val]));
  // Node's stalled checker (bull's own moveUnlockedJobsToWait on the
  // worker's interval), in a Queue that takes no jobs itself.
  const checker = h.queue(q, { settings: NODE_FAST });
  await checker.isReady();
  const timer = setInterval(() => checker.moveUnlockedJobsToWait().catch(() => {}), 1000);
  t.after(() => clearInterval(timer));

  const job = await startOnCAndKill(q, P, 5000);
  const id = String(job.id);
  // Node requeues it to the front of wait.
  await h.waitFor(async () => (await r.lrange(h.key(q, 'wait'), 0, -1)).includes(id), { timeout: 10000, message: 'job requeued' });
  assert.equal((await h.jobHash(r, q, id)).stalledCounter, '1');
  await h.waitFor(() => stalled.length === 1, { message: 'global:stalled' });
  // Our worker picks the retried job up; kill it again.
  const w2 = await h.startWorker({ queue: q, args: FAST });
  await w2.waitLog('job.active', { jobId: id });
  await w2.kill9();
  const hash = await h.waitFinished(r, q, id, 'failed', 15000);
  assert.equal(hash.failedReason, 'job stalled more than allowable limit');
  assert.equal(hash.stalledCounter, '2');
  assert.ok(Number(hash.finishedOn) > 0);
  await h.waitFor(() => failed.length >= 1, { message: 'global:failed' });
  assert.deepEqual(failed, [[id, 'job stalled more than maxStalledCount']]);
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: 0, failed: 1, priority: 0 });
});

test('kill -9 a Node worker mid-job: our worker recovers and completes it (stalledCounter 1)', async t => {
  const q = h.qname('n-kill');
  const P = h.queue(q);
  const stalled = [];
  await h.onGlobal(P, 'global:stalled', id => stalled.push(String(id)));
  const nw = await h.startNodeWorker({ queue: q, settings: NODE_FAST, handlers: ['sleep'] });
  const job = await P.add('sleep', { ms: 3000 });
  const id = String(job.id);
  await nw.waitLog('active', { jobId: id });
  await nw.kill9();
  assert.ok((await r.lrange(h.key(q, 'active'), 0, -1)).includes(id));
  const w = await h.startWorker({ queue: q, args: FAST });
  t.after(() => w.kill9());
  const hash = await h.waitFinished(r, q, id, 'completed', 20000);
  assert.equal(hash.stalledCounter, '1');
  assert.deepEqual(JSON.parse(hash.returnvalue), { slept: 3000 });
  assert.deepEqual(stalled, [id]);
  assert.equal(w.events('job.active', { jobId: id }).length, 1);
  assert.equal((await h.counts(r, q)).active, 0);
});

test('a cpu job 3x longer than the lock duration does not stall (Node runs stalled checks)', async t => {
  const q = h.qname('cpu');
  const P = h.queue(q);
  const stalled = [];
  await h.onGlobal(P, 'global:stalled', id => stalled.push(String(id)));
  const w = await h.startWorker({ queue: q, args: ['--lock-duration', '1000', '--stalled-interval', '500'] });
  t.after(() => w.kill9());
  const job = await P.add('cpu', { ms: 3000 });
  const id = String(job.id);
  await w.waitLog('job.active', { jobId: id });
  const nw = await h.startNodeWorker({ queue: q, handlers: ['cpu'],
    settings: { stalledInterval: 500, lockDuration: 1000, maxStalledCount: 1 } });
  t.after(() => nw.kill9());
  const hash = await h.waitFinished(r, q, id, 'completed', 15000);
  assert.equal(hash.stalledCounter, undefined);
  const rv = JSON.parse(hash.returnvalue);
  assert.equal(rv.ms, 3000, `returnvalue from our cpu job: ${hash.returnvalue}`);
  assert.ok(rv.spins > 0);
  assert.equal(w.events('job.active', { jobId: id }).length, 1);
  assert.equal(nw.events('active', { jobId: id }).length, 0);
  assert.deepEqual(stalled, []);
  assert.deepEqual(w.events('job.lock_extension_failed'), []);
  assert.deepEqual(w.events('job.lock_lost'), []);
});

test('a shared limiter keeps throughput within max/duration', async t => {
  const q = h.qname('limit');
  const P = h.queue(q);
  const MAX = 5;
  const DUR = 1000;
  const N = 30;
  const w = await h.startWorker({ queue: q, concurrency: 3, args: ['--limiter', `${q}:${MAX}:${DUR}`] });
  t.after(() => w.kill9());
  const nw = await h.startNodeWorker({ queue: q, handlers: ['noop'], concurrency: 3, limiter: { max: MAX, duration: DUR } });
  t.after(() => nw.kill9());
  const jobs = await P.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'noop', data: { i } })));
  await h.waitFor(async () => (await r.zcard(h.key(q, 'completed'))) === N, {
    timeout: 30000, interval: 100, message: async () => `all completed: ${JSON.stringify(await h.counts(r, q))}`,
  });
  const hashes = await Promise.all(jobs.map(j => h.jobHash(r, q, j.id)));
  const starts = hashes.map(x => Number(x.processedOn)).sort((a, b) => a - b);
  const byNode = hashes.filter(x => JSON.parse(x.returnvalue).by === 'node').length;
  t.diagnostic(`processed by Node ${byNode}, by C ${N - byNode}; span ${starts[N - 1] - starts[0]} ms`);
  // Fixed windows: N jobs need at least ceil(N/MAX) windows.
  const minSpan = (Math.ceil(N / MAX) - 1) * DUR;
  assert.ok(starts[N - 1] - starts[0] >= minSpan * 0.9, `span ${starts[N - 1] - starts[0]} ms < ${minSpan} ms`);
  // Any DUR-long sliding window holds at most the end of one fixed window and
  // the start of the next one.
  let worst = 0;
  for (let i = 0; i < N; i++) worst = Math.max(worst, starts.filter(s => s >= starts[i] && s < starts[i] + DUR).length);
  assert.ok(worst <= 2 * MAX - 1, `${worst} jobs started within ${DUR} ms`);
  assert.ok(byNode > 0 && byNode < N, `both workers processed jobs (Node ${byNode} of ${N})`);
  assert.equal((await h.counts(r, q)).failed, 0);
});

test('a Redis restart while our worker is blocked in BRPOPLPUSH', async t => {
  const srv = await h.startRedis();
  t.after(async () => {
    srv.proc.signal('SIGKILL');
    await srv.proc.exited;
  });
  const q = h.qname('restart');
  const w = await h.startWorker({ queue: q, redisUrl: srv.url });
  t.after(() => w.kill9());
  const r2 = h.redis(srv.url);
  const P = h.queue(q, {}, srv.url);
  const j1 = await P.add('noop', {});
  await h.waitFinished(r2, q, j1.id);
  await h.waitFor(async () => (await P.getWorkers()).some(c => c.cmd === 'brpoplpush'), { message: 'blocked in BRPOPLPUSH' });
  await srv.shutdown();
  await srv.start();
  const restartedAt = Date.now();
  const P2 = h.queue(q, {}, srv.url);
  const r3 = h.redis(srv.url);
  const j2 = await P2.add('noop', { after: 'restart' });
  const hash = await h.waitFinished(r3, q, j2.id, 'completed', 15000);
  const took = Number(hash.finishedOn) - restartedAt;
  t.diagnostic(`processed ${took} ms after the restart`);
  assert.ok(took < 5000, `job processed ${took} ms after the restart`);
  assert.ok(w.running);
  assert.equal((await P2.getWorkers()).length, 1, 'blocking connection named again after reconnect');
});
