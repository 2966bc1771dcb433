'use strict';
// 10,000 jobs, our worker killed with SIGKILL at random moments 5 times and
// restarted each time: every job must end completed exactly once.
const { test, after } = require('node:test');
const h = require('./lib/harness');
const { assert } = h;

h.env(); // fails the file (not skips) without ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL
const r = h.redis();
after(() => h.cleanup());

const N = 10000;
const KILLS = 5;
// A job that was requeued by a stalled check and is killed again would fail
// as "stalled more than allowable limit" (correct bull behaviour, not what
// this test is about), so allow a few stalls per job.
const ARGS = ['--lock-duration', '2000', '--stalled-interval', '1000', '--max-stalled-count', '5'];

test(`${N} jobs survive ${KILLS} SIGKILLs of our worker, each completed exactly once`, async t => {
  const q = h.qname('crash');
  const P = h.queue(q);
  const completed = new h.Counter();
  const failed = [];
  await h.onGlobal(P, 'global:completed', id => completed.inc(id));
  await h.onGlobal(P, 'global:failed', (id, val) => failed.push([id, val]));

  const specs = Array.from({ length: N }, (_, i) => (i % 2
    ? { name: 'noop', data: { i } }
    : { name: 'sleep', data: { i, ms: 1 + (i % 5) } }));
  const ids = [];
  for (let i = 0; i < N; i += 1000) {
    for (const j of await P.addBulk(specs.slice(i, i + 1000))) ids.push(String(j.id));
  }
  assert.equal(new Set(ids).size, N);

  const zcard = () => r.zcard(h.key(q, 'completed'));
  const workers = [];
  const killedAt = [];
  for (let k = 0; k < KILLS; k++) {
    const w = await h.startWorker({ queue: q, concurrency: 20, args: ARGS });
    workers.push(w);
    const base = await zcard();
    const step = 300 + Math.floor(Math.random() * 1200);
    await h.waitFor(async () => (await zcard()) >= base + step, {
      timeout: 30000, interval: 5,
      message: async () => `progress after restart ${k}: ${JSON.stringify(await h.counts(r, q))}; ${w.tail(5)}`,
    });
    await h.sleep(Math.floor(Math.random() * 40)); // random moment within the run
    await w.kill9();
    killedAt.push(await zcard());
  }
  t.diagnostic(`killed at completed counts ${killedAt.join(', ')}`);
  assert.ok(killedAt[KILLS - 1] < N, 'the last kill happened before the end');

  const last = await h.startWorker({ queue: q, concurrency: 20, args: ARGS });
  workers.push(last);
  await h.waitFor(async () => (await zcard()) === N, {
    timeout: 120000, interval: 100,
    message: async () => `all ${N} completed: ${JSON.stringify(await h.counts(r, q))}`,
  });
  await h.waitFor(() => completed.size === N, { timeout: 15000, message: () => `global:completed for every job (${completed.size})` });
  // A sentinel through the same worker flushes any late duplicate events.
  const sentinel = await P.add('noop', { sentinel: true });
  await h.waitFinished(r, q, sentinel.id);
  await h.waitFor(() => completed.n(sentinel.id) === 1, { message: 'sentinel event' });

  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: N + 1, failed: 0, priority: 0 });
  assert.deepEqual(failed, []);
  const inSet = new Set(await r.zrange(h.key(q, 'completed'), 0, -1));
  const pipe = r.pipeline();
  for (const id of ids) pipe.hmget(h.key(q, id), 'finishedOn', 'returnvalue', 'stalledCounter');
  const rows = (await pipe.exec()).map(([e, v]) => v);
  let stalledJobs = 0;
  let badEvents = 0;
  rows.forEach(([finishedOn, rv, sc], k) => {
    const id = ids[k];
    assert.ok(inSet.has(id), `job ${id} in completed`);
    assert.ok(Number(finishedOn) > 0, `job ${id} has finishedOn`);
    const want = specs[k].name === 'noop' ? { ok: true } : { slept: specs[k].data.ms };
    assert.deepEqual(JSON.parse(rv), want, `job ${id} returnvalue`);
    if (sc) stalledJobs++;
    if (completed.n(id) !== 1) badEvents++;
  });
  const starts = workers.reduce((n, w) => n + w.events('job.active').length, 0);
  t.diagnostic(`${stalledJobs} jobs were requeued by stalled checks; ${starts} starts in total`);
  assert.equal(badEvents, 0, `${badEvents} jobs did not get exactly one global:completed`);
  assert.ok(starts >= N + 1, 'every job was started');
});
