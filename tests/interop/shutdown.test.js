'use strict';
// SIGTERM handling of erpq-worker: graceful finish within --grace, hand-back
// of the rest, exit status, and what a Node worker sees afterwards.
const { test, after } = require('node:test');
const h = require('./lib/harness');
const { assert } = h;

h.env(); // fails the file (not skips) without ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL
const r = h.redis();
after(() => h.cleanup());

async function locks(q) {
  return (await r.keys(`bull:${q}:*:lock`)).sort();
}

test('SIGTERM while idle: exits 0 at once', async () => {
  const q = h.qname('idle');
  const w = await h.startWorker({ queue: q });
  const res = await w.stop(10000);
  assert.equal(res.code, 0, `exit ${JSON.stringify(res)}; ${w.tail()}`);
  assert.ok(res.ms < 1500, `exit took ${res.ms} ms`);
});

test('SIGTERM while jobs run: they finish within --grace and are completed; waiting jobs stay', async t => {
  const q = h.qname('grace');
  const P = h.queue(q);
  const w = await h.startWorker({ queue: q, concurrency: 3, args: ['--grace', '10'] });
  t.after(() => w.kill9());
  const running = [];
  for (let i = 0; i < 3; i++) running.push(String((await P.add('sleep', { ms: 1500, i })).id));
  for (const id of running) await w.waitLog('job.active', { jobId: id });
  const waiting = [];
  for (let i = 0; i < 2; i++) waiting.push(String((await P.add('sleep', { ms: 10, i })).id));
  const res = await w.stop(15000);
  assert.equal(res.code, 0, `exit ${JSON.stringify(res)}; ${w.tail()}`);
  assert.ok(res.ms < 3000, `exit took ${res.ms} ms (jobs needed < 1500 ms)`);
  for (const id of running) {
    const hash = await h.jobHash(r, q, id);
    assert.notEqual(await r.zscore(h.key(q, 'completed'), id), null, `job ${id} completed: ${JSON.stringify(hash)}`);
    assert.deepEqual(JSON.parse(hash.returnvalue), { slept: 1500 });
  }
  assert.deepEqual(h.activeIds(w), running, 'nothing fetched after SIGTERM');
  assert.deepEqual((await r.lrange(h.key(q, 'wait'), 0, -1)).sort(), waiting.slice().sort());
  assert.equal((await h.counts(r, q)).active, 0);
  assert.deepEqual(await locks(q), []);
  // A Node worker takes the waiting ones.
  const N = h.queue(q);
  N.process('sleep', 1, async job => ({ ...job.data, by: 'node' }));
  for (const id of waiting) {
    const hash = await h.waitFinished(r, q, id, 'completed', 10000);
    assert.equal(JSON.parse(hash.returnvalue).by, 'node');
  }
});

test('SIGTERM with --grace 1 and a 10 s job: handed back to wait at once, exit 0, a Node worker completes it', async t => {
  const q = h.qname('handback');
  const P = h.queue(q);
  const w = await h.startWorker({ queue: q, args: ['--grace', '1'] });
  t.after(() => w.kill9());
  const job = await P.add('sleep', { ms: 10000 });
  const id = String(job.id);
  await w.waitLog('job.active', { jobId: id });
  const t0 = Date.now();
  w.signal('SIGTERM');
  await h.waitFor(async () => (await r.lrange(h.key(q, 'wait'), 0, -1)).includes(id), {
    timeout: 3000, interval: 10,
    message: async () => `job back in wait: ${JSON.stringify(await h.counts(r, q))}; ${w.tail()}`,
  });
  const backAfter = Date.now() - t0;
  assert.ok(backAfter < 1800, `handed back ${backAfter} ms after SIGTERM`);
  assert.equal((await r.lrange(h.key(q, 'active'), 0, -1)).includes(id), false, 'not left in active');
  const res = await Promise.race([w.exited, h.sleep(2500).then(() => null)]);
  assert.ok(res, `worker still running ${Date.now() - t0} ms after SIGTERM; ${w.tail()}`);
  assert.equal(res.code, 0, `exit ${JSON.stringify(res)}`);
  const exitedAfter = Date.now() - t0;
  t.diagnostic(`back in wait after ${backAfter} ms, exited after ${exitedAfter} ms`);
  assert.deepEqual(await locks(q), [], 'lock released');
  assert.equal(w.events('job.handed_back', { jobId: id }).length, 1);
  assert.equal(w.events('job.completed').length + w.events('job.failed').length, 0);

  const nw = await h.startNodeWorker({ queue: q, handlers: ['sleep'] });
  t.after(() => nw.kill9());
  const hash = await h.waitFinished(r, q, id, 'completed', 15000);
  assert.deepEqual(JSON.parse(hash.returnvalue), { ms: 10000, by: 'node' });
  assert.equal(hash.stalledCounter, undefined, 'not recovered through a stalled check');
  assert.equal(nw.events('active', { jobId: id }).length, 1);
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: 1, failed: 0, priority: 0 });
});

test('Redis dies while a job runs, then SIGTERM: the worker exits within --grace + 1 s and another worker completes the job once Redis is back', async t => {
  const srv = await h.startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  t.after(() => srv.shutdown().catch(() => {}));
  const q = h.qname('redis-gone');
  const P = h.queue(q, {}, srv.url);
  // A short lock and stalled-check throttle (bull's stalled-check key is
  // shared by every worker), so the job is recoverable soon after Redis returns.
  const w = await h.startWorker({ queue: q, redisUrl: srv.url,
    args: ['--grace', '2', '--lock-duration', '3000', '--stalled-interval', '1000'] });
  t.after(() => w.kill9());
  const job = await P.add('sleep', { ms: 4000 });
  const id = String(job.id);
  await w.waitLog('job.active', { jobId: id });
  await srv.shutdown(); // Redis gone (its AOF keeps the job active under our lock).
  await h.sleep(200);
  const t0 = Date.now();
  w.signal('SIGTERM');
  const res = await Promise.race([w.exited, h.sleep(6000).then(() => null)]);
  const took = Date.now() - t0;
  assert.ok(res, `worker still running ${took} ms after SIGTERM with Redis down; ${w.tail()}`);
  assert.ok(took <= 2000 + 1000 + 500, `exited after ${took} ms (grace 2 s + 1 s)`);
  assert.equal(res.signal, null, w.tail());
  t.diagnostic(`exited ${took} ms after SIGTERM`);
  // The job was named in the log: handed back or left active, never silent.
  assert.ok(w.events('job.left_active', { jobId: id }).length + w.events('job.unreported', { jobId: id }).length +
    w.events('job.handed_back', { jobId: id }).length >= 1, w.tail(12));

  await srv.start();
  const w2 = await h.startWorker({ queue: q, redisUrl: srv.url, args: ['--stalled-interval', '500'] });
  t.after(() => w2.kill9());
  const r2 = h.redis(srv.url);
  const hash = await h.waitFinished(r2, q, id, 'completed', 20000);
  assert.deepEqual(JSON.parse(hash.returnvalue), { slept: 4000 });
  assert.equal((await h.counts(r2, q)).active, 0);
  await w2.stop();
});

test('a second SIGTERM exits at once, however long the grace', async t => {
  const q = h.qname('second');
  const P = h.queue(q);
  const w = await h.startWorker({ queue: q, args: ['--grace', '60'] });
  t.after(() => w.kill9());
  const job = await P.add('sleep', { ms: 30000 });
  const id = String(job.id);
  await w.waitLog('job.active', { jobId: id });
  w.signal('SIGTERM');
  await w.waitLog('worker.closing');
  const t0 = Date.now();
  w.signal('SIGTERM');
  const res = await Promise.race([w.exited, h.sleep(3000).then(() => null)]);
  assert.ok(res, `still running ${Date.now() - t0} ms after the second SIGTERM; ${w.tail()}`);
  assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
  // The running job went back to wait for another worker.
  assert.ok((await r.lrange(h.key(q, 'wait'), 0, -1)).includes(id), JSON.stringify(await h.counts(r, q)));
});
