'use strict';
// Dispatch by job name, a hash-tagged prefix, Node-side administration
// (what bull-board / arena call) on jobs our worker processed, and the
// fleet-wide stalled-check throttle.
const { test, after } = require('node:test');
const h = require('./lib/harness');
const { assert } = h;

h.env(); // fails the file (not skips) without ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL
const r = h.redis();
after(() => h.cleanup());

/** A fresh queue with our worker on it and a Node Queue for adding. */
async function setup(t, tag, { concurrency = 1, args = [], queueOpts = {} } = {}) {
  const q = h.qname(tag);
  const Q = h.queue(q, queueOpts);
  await Q.isReady();
  const w = await h.startWorker({ queue: q, concurrency, args });
  t.after(() => w.kill9());
  return { q, Q, w };
}

/** Every key matching pattern (SCAN). */
async function scanKeys(pattern) {
  const keys = [];
  let cursor = '0';
  do {
    const [c, ks] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = c;
    keys.push(...ks);
  } while (cursor !== '0');
  return keys.sort();
}

const ZERO = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, paused: 0 };

// ---------------------------------------------------------------- dispatch

test('dispatch with --diag-catch-all: unknown names and __default__ go to "*"', async t => {
  const { q, Q, w } = await setup(t, 'catchall', { args: ['--diag-catch-all'] });
  const completed = new Map();
  await h.onGlobal(Q, 'global:completed', (id, val) => completed.set(String(id), val));
  const report = await Q.add('monthly-report', { month: '2024-05', rows: [1, 2] });
  const dflt = await Q.add({ plain: true });
  assert.equal(dflt.name, '__default__');
  const echo = await Q.add('echo', { e: 1 });
  assert.deepEqual(await h.within(report.finished(), 10000, 'monthly-report'),
    { name: 'monthly-report', data: { month: '2024-05', rows: [1, 2] } });
  assert.deepEqual(await h.within(dflt.finished(), 10000, '__default__'), { name: '__default__', data: { plain: true } });
  assert.deepEqual(await h.within(echo.finished(), 10000, 'echo'), { e: 1 }, 'a named diag handler wins over "*"');
  await h.waitFor(() => completed.size === 3, { message: 'global:completed x3' });
  assert.deepEqual(JSON.parse(completed.get(String(report.id))), { name: 'monthly-report', data: { month: '2024-05', rows: [1, 2] } });
  for (const j of [report, dflt, echo]) {
    const hash = await h.jobHash(r, q, j.id);
    assert.equal(hash.attemptsMade, undefined);
    assert.equal(hash.failedReason, undefined);
  }
  assert.deepEqual(w.events('job.active').map(l => l.name), ['monthly-report', '__default__', 'echo']);
});

test('dispatch without --diag-catch-all: bull\'s missing-handler failure, retried like bull', async t => {
  const { q, Q, w } = await setup(t, 'nocatch');
  const job = await Q.add('monthly-report', { month: '2024-05' });
  await assert.rejects(h.within(job.finished(), 10000, 'finished'),
    { message: 'Missing process handler for job type monthly-report' });
  const hash = await h.jobHash(r, q, job.id);
  assert.equal(hash.failedReason, 'Missing process handler for job type monthly-report');
  assert.equal(hash.attemptsMade, '1');
  // bull's handleFailed goes through moveToFailed: attempts/backoff apply.
  const again = await Q.add('monthly-report', {}, { attempts: 2, backoff: { type: 'fixed', delay: 100 } });
  await assert.rejects(h.within(again.finished(), 10000, 'finished with attempts 2'),
    { message: 'Missing process handler for job type monthly-report' });
  const h2 = await h.jobHash(r, q, again.id);
  assert.equal(h2.attemptsMade, '2');
  assert.equal(JSON.parse(h2.stacktrace).length, 2);
  assert.equal(w.events('job.active', { jobId: String(again.id) }).length, 2);
  const ok = await Q.add('noop', {});
  assert.deepEqual(await h.within(ok.finished(), 10000, 'noop'), { ok: true });
  assert.ok(w.running);
});

// ------------------------------------------------------ hash-tagged prefix

test('prefix {erp}: Node Queue and our worker interoperate, every key under {erp}:', async t => {
  const PREFIX = '{erp}';
  const { q, Q, w } = await setup(t, 'tag', { args: ['--prefix', PREFIX], queueOpts: { prefix: PREFIX } });
  assert.equal(Q.keyPrefix, PREFIX);
  const a = await Q.add('echo', { a: 1 });
  const b = await Q.add('echo', { b: 2 }, { delay: 300 });
  const c = await Q.add('fail', { message: 'tagged failure' });
  assert.deepEqual(await h.within(a.finished(), 10000, 'a'), { a: 1 });
  assert.deepEqual(await h.within(b.finished(), 10000, 'b (delayed)'), { b: 2 });
  await assert.rejects(h.within(c.finished(), 10000, 'c'), { message: 'tagged failure' });
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, completed: 2, failed: 1 });
  assert.equal((await Q.getJob(a.id)).returnvalue.a, 1);
  assert.equal(await (await Q.getJob(c.id)).getState(), 'failed');
  const workers = await Q.getWorkers();
  assert.equal(workers.length, 1, JSON.stringify(workers));
  assert.equal(workers[0].name, q);
  assert.ok((await r.client('list')).includes(` name=${PREFIX}:${Buffer.from(q).toString('base64')} `),
    'our blocking connection is named <prefix>:<base64(queue)>');
  const keys = await scanKeys(`*${q}*`);
  assert.ok(keys.length >= 6, keys.join(' '));
  for (const k of keys) assert.ok(k.startsWith(`${PREFIX}:${q}:`), `key ${k} outside ${PREFIX}:`);
  assert.deepEqual(await scanKeys(`bull:${q}*`), []);
  assert.ok(keys.includes(`${PREFIX}:${q}:stalled-check`), 'stalled check under the tagged prefix');
  assert.deepEqual(w.events('job.active').map(l => l.jobId), [a.id, c.id, b.id].map(String));
});

// ------------------------------------------------------------------ admin

test('admin: job.retry() of a job our worker failed runs again there; attemptsMade kept', async t => {
  const { q, Q, w } = await setup(t, 'retry');
  const job = await Q.add('fail', { message: 'once', times: 1 });
  await assert.rejects(h.within(job.finished(), 10000, 'first run'), { message: 'once' });
  const failed = await Q.getJob(job.id);
  assert.equal(await failed.getState(), 'failed');
  assert.equal(failed.attemptsMade, 1);
  await failed.retry();
  const hash = await h.waitFinished(r, q, job.id, 'completed', 10000);
  assert.deepEqual(JSON.parse(hash.returnvalue), { ok: true, attempts: 2 });
  assert.equal(hash.attemptsMade, '1', 'attemptsMade kept by reprocessJob');
  assert.equal(hash.failedReason, undefined);
  assert.ok(Number(hash.retriedOn) > 0);
  assert.equal(w.events('job.active', { jobId: String(job.id) }).length, 2);
  const again = await Q.getJob(job.id);
  assert.equal(await again.getState(), 'completed');
  assert.equal(again.attemptsMade, 1);
  await assert.rejects(again.retry(), /not failed|Couldn't retry/i, 'retry of a completed job refused');
});

test('admin: clean(0, completed|failed), promote(), remove(), getJobCounts()', async t => {
  const { q, Q, w } = await setup(t, 'admin');
  const ok = [];
  for (let i = 0; i < 3; i++) ok.push(await Q.add('echo', { i }));
  const bad = [await Q.add('fail', { message: 'x' }), await Q.add('fail', { message: 'y' })];
  for (const j of ok) await h.within(j.finished(), 10000, `ok ${j.id}`);
  for (const j of bad) await assert.rejects(h.within(j.finished(), 10000, `bad ${j.id}`));
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, completed: 3, failed: 2 });

  // clean with a long grace keeps everything; grace 0 removes all.
  assert.deepEqual(await Q.clean(3600 * 1000, 'completed'), []);
  const cleanedC = await Q.clean(0, 'completed');
  assert.deepEqual(cleanedC.map(String).sort(), ok.map(j => String(j.id)).sort());
  const cleanedF = await Q.clean(0, 'failed');
  assert.deepEqual(cleanedF.map(String).sort(), bad.map(j => String(j.id)).sort());
  for (const j of ok.concat(bad)) assert.equal(await r.exists(h.key(q, j.id)), 0, `hash ${j.id} removed`);
  assert.deepEqual(await Q.getJobCounts(), ZERO);

  // promote(): a delayed job runs at once on our worker.
  const late = await Q.add('echo', { late: true }, { delay: 60000 });
  assert.equal(await late.getState(), 'delayed');
  const promotedAt = Date.now();
  await late.promote();
  const lh = await h.waitFinished(r, q, late.id, 'completed', 5000);
  assert.ok(Number(lh.processedOn) - promotedAt < 1000, `ran ${Number(lh.processedOn) - promotedAt} ms after promote`);
  assert.equal(lh.delay, '0');
  assert.equal((await h.counts(r, q)).delayed, 0);

  // remove(): delayed and completed jobs; an active job locked by our worker is refused.
  const d = await Q.add('echo', {}, { delay: 60000 });
  await d.remove();
  assert.equal(await r.exists(h.key(q, d.id)), 0);
  assert.equal(await r.zcard(h.key(q, 'delayed')), 0);
  await (await Q.getJob(late.id)).remove();
  assert.equal(await r.exists(h.key(q, late.id)), 0);
  assert.equal(await r.zcard(h.key(q, 'completed')), 0);
  const busy = await Q.add('sleep', { ms: 1500 });
  await w.waitLog('job.active', { jobId: String(busy.id) });
  await assert.rejects((await Q.getJob(busy.id)).remove(), { message: `Could not remove job ${busy.id}` });

  // getJobCounts() while one job is active on our worker (concurrency 1).
  const waiting = [await Q.add('noop', {}), await Q.add('noop', {})];
  const delayed = [await Q.add('noop', {}, { delay: 60000 })];
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, active: 1, waiting: 2, delayed: 1 });
  assert.deepEqual(await h.within(busy.finished(), 10000, 'busy'), { slept: 1500 });
  for (const j of waiting) await h.within(j.finished(), 10000, 'waiting job');
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, completed: 3, delayed: 1 });
  assert.equal(await delayed[0].getState(), 'delayed');
});

test('admin: empty() while globally paused, then resume', async t => {
  const { q, Q, w } = await setup(t, 'empty');
  await Q.pause();
  const paused = [];
  for (let i = 0; i < 5; i++) paused.push(await Q.add('echo', { i }));
  paused.push(await Q.add('echo', { p: 1 }, { priority: 3 }));
  const delayed = await Q.add('echo', { d: 1 }, { delay: 60000 });
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, paused: 6, delayed: 1 });
  await Q.empty();
  assert.deepEqual(await Q.getJobCounts(), ZERO);
  for (const j of paused) assert.equal(await r.exists(h.key(q, j.id)), 0, `hash ${j.id} deleted`);
  // bull's empty() drops the delayed zset but leaves those hashes behind.
  assert.equal(await r.exists(h.key(q, delayed.id)), 1);
  assert.equal(await r.get(h.key(q, 'meta-paused')), null, 'empty() also deletes meta-paused');
  await Q.resume();
  const next = await Q.add('echo', { after: 'empty' });
  assert.deepEqual(await h.within(next.finished(), 10000, 'after empty'), { after: 'empty' });
  assert.deepEqual(h.activeIds(w, q), [String(next.id)], 'no emptied job ran');
});

test('admin: global pause()/resume() with our worker busy', async t => {
  const { q, Q, w } = await setup(t, 'pauseflow', { concurrency: 2 });
  const jobs = [];
  for (let i = 0; i < 20; i++) jobs.push(await Q.add('sleep', { ms: 100 }));
  await h.waitFor(() => h.activeIds(w, q).length >= 4, { message: '4 jobs started' });
  await Q.pause();
  const startedAtPause = h.activeIds(w, q).length;
  assert.equal(await r.get(h.key(q, 'meta-paused')), '1');
  // The running ones finish; nothing else starts.
  await h.waitFor(async () => (await h.counts(r, q)).active === 0, { timeout: 5000, message: 'active drained' });
  const c = await h.counts(r, q);
  assert.equal(c.wait, 0);
  assert.equal(c.paused + c.completed, 20, JSON.stringify(c));
  assert.ok(c.paused > 0, 'some jobs held in paused');
  const doneAtPause = c.completed;
  // At most the jobs in flight when pause() ran (concurrency 2) started later.
  assert.ok(h.activeIds(w, q).length <= startedAtPause + 2,
    `${h.activeIds(w, q).length - startedAtPause} jobs started after pause()`);
  const finishedAt = Date.now();
  await h.waitFor(() => Date.now() > finishedAt + 500, { message: '500 ms paused' });
  assert.equal((await h.counts(r, q)).completed, doneAtPause, 'nothing ran while paused');
  await Q.resume();
  await h.waitFor(async () => (await r.zcard(h.key(q, 'completed'))) === 20, { timeout: 10000, message: 'all 20 completed' });
  assert.equal(new Set(h.activeIds(w, q)).size, 20);
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, completed: 20 });
});

test('admin: obliterate({force:true}) after pause, with our worker running a job', async t => {
  const { q, Q, w } = await setup(t, 'obliterate', { args: ['--stalled-interval', '1000'] });
  await Q.add('echo', { c: 1 });
  await Q.add('fail', { message: 'f' });
  await h.waitFor(async () => {
    const c = await h.counts(r, q);
    return c.completed === 1 && c.failed === 1;
  }, { message: 'one completed, one failed' });
  await Q.add('echo', {}, { delay: 60000 });
  const busy = await Q.add('sleep', { ms: 1500 });
  await w.waitLog('job.active', { jobId: String(busy.id) });
  await Q.pause();
  await Q.add('echo', { waiting: true }); // lands in paused
  await assert.rejects(Q.obliterate(), { message: 'Cannot obliterate queue with active jobs' });
  await Q.obliterate({ force: true });
  const left = await scanKeys(`bull:${q}:*`);
  assert.deepEqual(left.filter(k => !k.endsWith(':stalled-check')), [], `keys left: ${left}`);
  // The forcibly removed active job ends on our worker without recreating anything.
  await h.waitFor(() => w.logs.some(l => l.jobId === String(busy.id) && l.event !== 'job.active'),
    { timeout: 5000, message: () => `our worker to finish with job ${busy.id}: ${w.tail(5)}` });
  await h.waitFor(() => Date.now() > Number(busy.timestamp) + 2500, { message: 'one more stalled interval' });
  const after = await scanKeys(`bull:${q}:*`);
  assert.deepEqual(after.filter(k => !/:(stalled-check|stalled)$/.test(k)), [], `keys after the job ended: ${after}`);
  assert.equal(await r.exists(h.key(q, busy.id)), 0, 'job hash not recreated');
  assert.ok(w.running);
  await w.waitLog('job.finish_rejected', { jobId: String(busy.id), error: 'job missing' });
  // The queue is usable again (obliterate deleted meta-paused).
  const fresh = await Q.add('echo', { fresh: true });
  assert.deepEqual(await h.within(fresh.finished(), 10000, 'job after obliterate'), { fresh: true });
});

test('admin: queue.retryJobs() re-runs every failed job on our worker', async t => {
  const { q, Q, w } = await setup(t, 'retryjobs', { concurrency: 2 });
  assert.equal(typeof Q.retryJobs, 'function', 'bull 4.16.5 has Queue#retryJobs');
  const jobs = [];
  for (let i = 0; i < 5; i++) jobs.push(await Q.add('fail', { message: `r${i}`, times: 1 }));
  await h.waitFor(async () => (await r.zcard(h.key(q, 'failed'))) === 5, { message: '5 failed' });
  await Q.retryJobs();
  await h.waitFor(async () => (await r.zcard(h.key(q, 'completed'))) === 5, { timeout: 10000, message: '5 completed' });
  for (const j of jobs) {
    const hash = await h.jobHash(r, q, j.id);
    assert.deepEqual(JSON.parse(hash.returnvalue), { ok: true, attempts: 2 });
    assert.equal(hash.failedReason, undefined);
    assert.equal(w.events('job.active', { jobId: String(j.id) }).length, 2);
  }
  assert.deepEqual(await Q.getJobCounts(), { ...ZERO, completed: 5 });
});

// ------------------------------------------------------- stalled checks

test('stalled-check key: one check per interval for a mixed fleet (MONITOR)', async t => {
  const q = h.qname('stallck');
  const w = await h.startWorker({ queue: q, args: ['--stalled-interval', '1000'] });
  t.after(() => w.kill9());
  const checkKey = h.key(q, 'stalled-check');
  const mon = await h.redis().monitor();
  t.after(() => mon.disconnect());
  // MONITOR lists a script's own commands ("lua") right after its EVALSHA.
  const calls = []; // {t, sha}
  const sets = [];  // {t, sha}: checks actually performed
  let lastSha = null;
  mon.on('monitor', (time, args, source) => {
    const cmd = String(args[0]).toLowerCase();
    if (source !== 'lua' && cmd === 'evalsha') {
      lastSha = args.slice(3).includes(checkKey) ? args[1] : null;
      if (lastSha) calls.push({ t: Number(time) * 1000, sha: lastSha });
    } else if (source === 'lua' && cmd === 'set' && args[1] === checkKey) {
      sets.push({ t: Number(time) * 1000, sha: lastSha });
    }
  });
  // Learn our script's sha while only our worker runs.
  const ours = (await h.waitFor(() => calls[0], { timeout: 5000, message: 'our stalled check' })).sha;
  const nw = await h.startNodeWorker({ queue: q, settings: { stalledInterval: 1000 }, handlers: ['noop'] });
  t.after(() => nw.kill9());
  const t0 = Date.now();
  await h.waitFor(() => Date.now() > t0 + 5000, { timeout: 7000, message: '5 s of checks' });
  const t1 = Date.now();
  const inWin = x => x.t >= t0 && x.t < t1;
  const winCalls = calls.filter(inWin);
  const winSets = sets.filter(inWin);
  const shas = [...new Set(winCalls.map(c => c.sha))];
  const byOurs = winCalls.filter(c => c.sha === ours).length;
  t.diagnostic(`calls: ours ${byOurs}, bull ${winCalls.length - byOurs}; checks performed ${winSets.length} ` +
    `(ours ${winSets.filter(s => s.sha === ours).length})`);
  assert.equal(shas.length, 2, 'both our worker and the Node worker call their stalled check');
  assert.ok(byOurs >= 4 && winCalls.length - byOurs >= 4, 'each calls about once a second');
  assert.ok(winSets.length >= 3 && winSets.length <= 6, `${winSets.length} checks performed in 5 s (want <= 5+1)`);
  for (let i = 1; i < winSets.length; i++) {
    assert.ok(winSets[i].t - winSets[i - 1].t >= 990, `checks ${winSets[i].t - winSets[i - 1].t} ms apart`);
  }
  const pttl = await r.pttl(checkKey);
  assert.ok(pttl <= 1000 && pttl !== -1, `stalled-check PTTL ${pttl} (set with PX stalledInterval)`);
});

test('1,000 delayed jobs due in the same millisecond all run on our worker alone', async t => {
  const q = h.qname('delay1k');
  const Q = h.queue(q);
  await Q.isReady();
  const w = await h.startWorker({ queue: q, concurrency: 8 });
  t.after(() => w.kill9());
  await r.set(h.key(q, 'id'), '3500'); // ids 3501..4500 wrap the 12 low score bits
  const N = 1000;
  const T = Date.now();
  const due = T + 2000;
  const ids = [];
  for (let i = 0; i < N; i += 250) {
    const batch = Array.from({ length: 250 }, (_, k) => ({
      name: 'echo', data: { i: i + k }, opts: { timestamp: T, delay: due - T },
    }));
    for (const j of await Q.addBulk(batch)) ids.push(String(j.id));
  }
  assert.ok(Date.now() < due, 'all added before they are due');
  const z = await r.zrange(h.key(q, 'delayed'), 0, -1, 'WITHSCORES');
  assert.equal(z.length, 2 * N);
  for (let i = 0; i < z.length; i += 2) {
    assert.equal(Math.floor(Number(z[i + 1]) / 4096), due, `score of ${z[i]}`);
    assert.equal(Number(z[i + 1]) % 4096, Number(z[i]) & 0xfff);
  }
  await h.waitFor(async () => (await r.zcard(h.key(q, 'completed'))) === N, {
    timeout: 30000, interval: 100, message: async () => `all completed: ${JSON.stringify(await h.counts(r, q))}`,
  });
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: N, failed: 0, priority: 0 });
  const started = h.activeIds(w, q);
  assert.equal(started.length, N);
  assert.deepEqual([...new Set(started)].sort(), ids.slice().sort());
  const pipe = r.pipeline();
  for (const id of ids) pipe.hmget(h.key(q, id), 'processedOn', 'delay');
  const rows = (await pipe.exec()).map(([, v]) => v);
  const starts = rows.map(([p]) => Number(p));
  assert.ok(Math.min(...starts) >= due, `a job ran ${due - Math.min(...starts)} ms early`);
  t.diagnostic(`first start ${Math.min(...starts) - due} ms after due, last ${Math.max(...starts) - due} ms`);
  assert.ok(Math.min(...starts) - due < 1000, 'promoted within a second of due');
  for (const [, d] of rows) assert.equal(d, '0');
});
