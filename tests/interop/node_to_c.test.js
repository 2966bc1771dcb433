'use strict';
// Node bull 4.16.5 producer → erpq-worker (diag jobs). Every test uses its own
// queue and its own worker process.
const { test, after } = require('node:test');
const h = require('./lib/harness');
const { assert } = h;

h.env(); // fails the file (not skips) without ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL
const r = h.redis();
after(() => h.cleanup());

/** A fresh queue with our worker on it and a Node Queue for producing. */
async function setup(t, tag, { concurrency = 1, args = [], start = true, queueOpts = {} } = {}) {
  const q = h.qname(tag);
  const Q = h.queue(q, queueOpts);
  await Q.isReady();
  const s = { q, Q, w: null };
  s.start = async () => {
    s.w = await h.startWorker({ queue: q, concurrency, args });
    return s.w;
  };
  if (start) await s.start();
  t.after(async () => {
    if (s.w) await s.w.kill9();
  });
  return s;
}

const jobIds = (w, id) => w.events('job.active', { jobId: String(id) });

test('a __default__ job fails with bull\'s missing-handler reason; the worker keeps running', async t => {
  const { q, Q, w } = await setup(t, 'default');
  const job = await Q.add({ x: 1 });
  assert.equal(job.name, '__default__');
  await assert.rejects(h.within(job.finished(), 10000, 'finished'),
    { message: 'Missing process handler for job type __default__' });
  const hash = await h.jobHash(r, q, job.id);
  assert.equal(hash.failedReason, 'Missing process handler for job type __default__');
  assert.equal(hash.attemptsMade, '1');
  assert.ok(Number(hash.finishedOn) >= Number(hash.processedOn));
  assert.equal(JSON.parse(hash.stacktrace).length, 1);
  assert.notEqual(await r.zscore(h.key(q, 'failed'), job.id), null);
  const next = await Q.add('noop', {});
  assert.deepEqual(await h.within(next.finished(), 10000, 'noop finished'), { ok: true });
  assert.ok(w.running);
  assert.equal((await h.counts(r, q)).active, 0);
});

test('named jobs: job.finished() and global:completed values', async t => {
  const { q, Q } = await setup(t, 'named', { concurrency: 3 });
  const seen = new Map();
  await h.onGlobal(Q, 'global:completed', (id, val) => {
    if (!seen.has(id)) seen.set(id, []);
    seen.get(id).push(val);
  });
  const data = { a: 1, s: 'é"\\\n', arr: [1, 2.5, null], nested: { x: null, y: false } };
  const cases = [
    [await Q.add('echo', data), data],
    [await Q.add('echo', 'just a string'), 'just a string'],
    [await Q.add('echo', 42), 42],
    [await Q.add('noop', {}), { ok: true }],
    [await Q.add('sleep', { ms: 50 }), { slept: 50 }],
  ];
  for (const [job, want] of cases) {
    assert.deepEqual(await h.within(job.finished(), 10000, `job ${job.id}`), want);
  }
  await h.waitFor(() => cases.every(([job]) => seen.has(String(job.id))), { message: 'global:completed for all' });
  for (const [job, want] of cases) {
    const hash = await h.jobHash(r, q, job.id);
    const vals = seen.get(String(job.id));
    assert.equal(vals.length, 1, `one global:completed for ${job.id}`);
    assert.equal(typeof vals[0], 'string', 'val is the returnvalue JSON as a string');
    assert.equal(vals[0], hash.returnvalue);
    assert.deepEqual(JSON.parse(vals[0]), want);
    assert.equal(hash.attemptsMade, undefined, 'attemptsMade counts failures only');
    assert.notEqual(await r.zscore(h.key(q, 'completed'), job.id), null);
    const got = await Q.getJob(job.id);
    assert.deepEqual(got.returnvalue, want);
    assert.equal(await got.getState(), 'completed');
  }
});

test('attempts=3 with fixed, exponential and a custom named backoff', async t => {
  const { q, Q, w } = await setup(t, 'backoff', { concurrency: 3, args: ['--backoff-strategy', 'lin:linear:100'] });
  const failed = new h.Counter();
  await h.onGlobal(Q, 'global:failed', id => failed.inc(id));
  // Record every (id, score) that appears in the delayed zset.
  const scores = new Map();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const z = await r.zrange(h.key(q, 'delayed'), 0, -1, 'WITHSCORES');
      for (let i = 0; i < z.length; i += 2) {
        if (!scores.has(z[i])) scores.set(z[i], new Set());
        scores.get(z[i]).add(z[i + 1]);
      }
      await h.sleep(3);
    }
  })();
  t.after(async () => {
    polling = false;
    await poller;
  });
  const specs = [
    { name: 'fixed', backoff: { type: 'fixed', delay: 300 }, delays: [300, 300] },
    { name: 'exponential', backoff: { type: 'exponential', delay: 200 }, delays: [200, 600] },
    { name: 'custom', backoff: { type: 'lin' }, delays: [100, 200] },
  ];
  for (const s of specs) {
    s.job = await Q.add('fail', { message: `boom-${s.name}` }, { attempts: 3, backoff: s.backoff });
  }
  for (const s of specs) {
    await assert.rejects(h.within(s.job.finished(), 15000, `${s.name} finished`), { message: `boom-${s.name}` });
  }
  await h.waitFor(() => specs.every(s => failed.n(s.job.id) >= 1), { message: 'global:failed for all' });
  // Any extra global:failed would have been published before the final one;
  // let a sentinel job pass through to flush the channel.
  const sentinel = await Q.add('noop', {});
  await h.within(sentinel.finished(), 10000, 'sentinel');
  polling = false;
  await poller;
  for (const s of specs) {
    const id = String(s.job.id);
    const hash = await h.jobHash(r, q, id);
    assert.equal(failed.n(id), 1, `exactly one global:failed for ${s.name}`);
    assert.equal(hash.attemptsMade, '3', `${s.name} attemptsMade`);
    assert.equal(hash.failedReason, `boom-${s.name}`);
    const st = JSON.parse(hash.stacktrace);
    assert.ok(Array.isArray(st) && st.length === 3, `${s.name} stacktrace has 3 entries: ${hash.stacktrace}`);
    for (const e of st) assert.match(e, new RegExp(`boom-${s.name}`));
    assert.equal(hash.delay, '0', 'backoff does not touch the delay field');
    assert.notEqual(await r.zscore(h.key(q, 'failed'), id), null);
    // Two distinct delayed scores, one per retry, = due*4096 + (id & 0xfff).
    const sc = [...(scores.get(id) || [])].map(Number).sort((a, b) => a - b);
    assert.equal(sc.length, 2, `${s.name}: delayed scores seen ${JSON.stringify(sc)}`);
    const retries = w.events('job.delayed', { jobId: id });
    const actives = w.events('job.active', { jobId: id });
    assert.equal(retries.length, 2, `${s.name}: two job.delayed log lines`);
    assert.equal(actives.length, 3, `${s.name}: three attempts`);
    for (let k = 0; k < 2; k++) {
      assert.equal(sc[k] % 4096, Number(id) & 0xfff, `${s.name} score low bits`);
      const due = Math.floor(sc[k] / 4096);
      const failedAt = Date.parse(retries[k].ts);
      const d = due - failedAt;
      assert.ok(d >= s.delays[k] - 50 && d <= s.delays[k] + 50,
        `${s.name} retry ${k + 1}: due-failedAt=${d}, want ~${s.delays[k]}`);
      const nextStart = Date.parse(actives[k + 1].ts);
      assert.ok(nextStart >= due - 2, `${s.name} retry ${k + 1} ran ${due - nextStart} ms early`);
      assert.ok(nextStart - due < 1000, `${s.name} retry ${k + 1} ran ${nextStart - due} ms late`);
    }
  }
  assert.equal((await h.counts(r, q)).delayed, 0);
});

async function checkRemoveOn(t, kind) {
  const done = kind === 'complete' ? 'completed' : 'failed';
  const name = kind === 'complete' ? 'echo' : 'fail';
  const opt = kind === 'complete' ? 'removeOnComplete' : 'removeOnFail';
  const { q, Q } = await setup(t, `rm${kind}`);
  const finished = [];
  await h.onGlobal(Q, `global:${done}`, id => finished.push(String(id)));
  const add = (o, i) => Q.add(name, { i, message: `m${i}` }, { [opt]: o });
  const waitDone = n => h.waitFor(() => finished.length >= n, { message: `${n} global:${done} events` });
  const setKey = h.key(q, done);

  // true: no trace of the job is left.
  const a = await add(true, 0);
  await waitDone(1);
  assert.equal(finished[0], String(a.id));
  assert.equal(await r.exists(h.key(q, a.id)), 0, 'hash deleted');
  assert.equal(await r.zscore(setKey, a.id), null);
  assert.equal(await r.zcard(setKey), 0);

  // n = 2: only the newest 2 are kept (hashes of the others deleted).
  const ids = [];
  for (let i = 1; i <= 5; i++) ids.push(String((await add(2, i)).id));
  await waitDone(6);
  assert.deepEqual((await r.zrange(setKey, 0, -1)).sort(), ids.slice(3).sort());
  for (const id of ids.slice(0, 3)) assert.equal(await r.exists(h.key(q, id)), 0, `hash ${id} deleted`);
  for (const id of ids.slice(3)) assert.equal(await r.exists(h.key(q, id)), 1, `hash ${id} kept`);

  // {age, count}: count trims to 3 ...
  const ids2 = [];
  for (let i = 6; i <= 9; i++) ids2.push(String((await add({ age: 3600, count: 3 }, i)).id));
  await waitDone(10);
  const kept = ids.slice(3).concat(ids2).slice(-3);
  assert.deepEqual((await r.zrange(setKey, 0, -1)).sort(), kept.slice().sort());
  for (const id of ids.slice(3).concat(ids2).slice(0, -3)) assert.equal(await r.exists(h.key(q, id)), 0);
  // ... and age removes what finished more than age seconds before.
  const lastFinished = Number((await h.jobHash(r, q, kept[2])).finishedOn);
  await h.waitFor(() => Date.now() > lastFinished + 1100, { timeout: 3000, message: 'age to pass' });
  const b = await add({ age: 1, count: 100 }, 10);
  await waitDone(11);
  assert.deepEqual(await r.zrange(setKey, 0, -1), [String(b.id)]);
  for (const id of kept) assert.equal(await r.exists(h.key(q, id)), 0, `aged hash ${id} deleted`);
  const hb = await h.jobHash(r, q, b.id);
  assert.ok(hb && hb.finishedOn, 'newest job kept');
}

test('removeOnComplete as true, n and {age,count}', t => checkRemoveOn(t, 'complete'));
test('removeOnFail as true, n and {age,count}', t => checkRemoveOn(t, 'fail'));

test('priority 0/1/5 mixed with lifo: same processing order as a Node worker', async t => {
  const plan = [
    ['a', {}], ['b', { priority: 5 }], ['c', { priority: 1 }], ['d', { lifo: true }],
    ['e', { priority: 5 }], ['f', { priority: 1 }], ['g', {}], ['h', { lifo: true }],
    ['i', { priority: 5, lifo: true }], ['j', {}], ['k', { priority: 1 }],
  ];
  // C: all jobs added before the worker starts, concurrency 1.
  const c = await setup(t, 'prio', { start: false });
  const cLabel = new Map();
  for (const [label, o] of plan) cLabel.set(String((await c.Q.add('echo', { label }, o)).id), label);
  const expected = (await r.lrange(h.key(c.q, 'wait'), 0, -1)).reverse().map(id => cLabel.get(id));
  await c.start();
  await h.waitFor(() => h.activeIds(c.w).length === plan.length, { message: 'all C jobs started' });
  await h.waitFor(async () => (await r.zcard(h.key(c.q, 'completed'))) === plan.length, { message: 'all C jobs done' });
  const cOrder = h.activeIds(c.w).map(id => cLabel.get(id));

  // Node: the same adds on another queue, processed by a Node worker.
  const nq = h.qname('prio-node');
  const N = h.queue(nq);
  const nLabel = new Map();
  for (const [label, o] of plan) nLabel.set(String((await N.add('echo', { label }, o)).id), label);
  const nOrder = [];
  N.process('echo', 1, async job => {
    nOrder.push(job.data.label);
    return job.data;
  });
  await h.waitFor(() => nOrder.length === plan.length, { message: 'all Node jobs processed' });

  assert.deepEqual(cOrder, nOrder, 'C order equals Node order');
  assert.deepEqual(cOrder, expected, 'C pops the tail of wait');
  // Sanity on bull's semantics: every priority 1 job before any priority 5 job.
  const pos = l => cOrder.indexOf(l);
  for (const p1 of ['c', 'f', 'k']) for (const p5 of ['b', 'e', 'i']) assert.ok(pos(p1) < pos(p5), `${p1} before ${p5}`);
  assert.equal(await r.zcard(h.key(c.q, 'priority')), 0, 'priority zset emptied');
});

test('delayed jobs with only C workers run on time', async t => {
  // One job added before any worker runs (promoted at start-up) ...
  const { q, Q, start } = await setup(t, 'delayed', { start: false });
  const early = await Q.add('echo', { n: 0 }, { delay: 300 });
  await h.waitFor(() => Date.now() > early.timestamp + 600, { message: 'early job due' });
  const t0 = Date.now();
  await start();
  const he = await h.waitFinished(r, q, early.id);
  assert.ok(Number(he.processedOn) - t0 < 1500, `overdue job ran ${Number(he.processedOn) - t0} ms after start`);
  // ... and jobs due while the worker is idle (guard interval 5000 by default:
  // the delayed channel must wake it).
  const jobs = [await Q.add('echo', { n: 1 }, { delay: 1500 }), await Q.add('echo', { n: 2 }, { delay: 800 }),
    await Q.add('echo', { n: 3 }, { delay: 2500 })];
  for (const job of jobs) {
    const sc = Number(await r.zscore(h.key(q, 'delayed'), job.id));
    assert.equal(Math.floor(sc / 4096), job.timestamp + job.opts.delay);
  }
  for (const job of jobs) {
    const hash = await h.waitFinished(r, q, job.id);
    const due = job.timestamp + job.opts.delay;
    const late = Number(hash.processedOn) - due;
    assert.ok(late >= 0, `job ${job.id} ran ${-late} ms early`);
    assert.ok(late < 1000, `job ${job.id} ran ${late} ms late`);
    assert.equal(hash.delay, '0', 'promotion resets delay');
    assert.deepEqual(JSON.parse(hash.returnvalue), job.data);
  }
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: 4, failed: 0, priority: 0 });
});

test('progress events and job logs', async t => {
  const { q, Q } = await setup(t, 'progress');
  const progress = [];
  await h.onGlobal(Q, 'global:progress', (id, p) => progress.push([String(id), p]));
  const job = await Q.add('progress', { steps: 4 });
  assert.deepEqual(await h.within(job.finished(), 10000, 'finished'), { steps: 4 });
  await h.waitFor(() => progress.length >= 4, { message: '4 progress events' });
  assert.deepEqual(progress, [1, 2, 3, 4].map(p => [String(job.id), p]));
  const got = await Q.getJob(job.id);
  assert.equal(got.progress(), 4);
  assert.equal((await h.jobHash(r, q, job.id)).progress, '4');
  assert.deepEqual(await Q.getJobLogs(job.id), { logs: [1, 2, 3, 4].map(i => `step ${i} of 4`), count: 4 });
});

test('timeout fails the job with bull\'s reason', async t => {
  const { q, Q, w } = await setup(t, 'timeout');
  const job = await Q.add('sleep', { ms: 3000 }, { timeout: 300 });
  await assert.rejects(h.within(job.finished(), 10000, 'finished'), { message: 'Promise timed out after 300 milliseconds' });
  const hash = await h.jobHash(r, q, job.id);
  assert.equal(hash.failedReason, 'Promise timed out after 300 milliseconds');
  const took = Number(hash.finishedOn) - Number(hash.processedOn);
  assert.ok(took >= 300 && took < 1500, `timed out after ${took} ms`);
  assert.equal(hash.attemptsMade, '1');
  const next = await Q.add('noop', {});
  assert.deepEqual(await h.within(next.finished(), 10000, 'noop after timeout'), { ok: true });
  assert.ok(w.running);
});

test('global pause/resume while our worker is blocked', async t => {
  const { q, Q, w } = await setup(t, 'pause');
  // Our worker is blocked in BRPOPLPUSH on the empty wait list.
  await h.waitFor(async () => (await Q.getWorkers()).some(c => c.cmd === 'brpoplpush'), { message: 'worker blocked' });
  await Q.pause();
  assert.equal(await r.get(h.key(q, 'meta-paused')), '1');
  const jobs = [];
  for (let i = 0; i < 3; i++) jobs.push(await Q.add('noop', { i }));
  assert.equal(await r.llen(h.key(q, 'paused')), 3);
  // Nothing may be processed while paused (absence: check over 2 s).
  const until = Date.now() + 2000;
  while (Date.now() < until) {
    const c = await h.counts(r, q);
    assert.equal(c.active + c.completed + c.failed + c.wait, 0, `processed while paused: ${JSON.stringify(c)}`);
    await h.sleep(50);
  }
  assert.equal(h.activeIds(w).length, 0);
  const resumedAt = Date.now();
  await Q.resume();
  for (const job of jobs) await h.waitFinished(r, q, job.id, 'completed', 8000);
  const lastStart = Math.max(...await Promise.all(jobs.map(async j => Number((await h.jobHash(r, q, j.id)).processedOn))));
  assert.ok(lastStart - resumedAt < 6000, `resumed jobs ran ${lastStart - resumedAt} ms after resume`);
  assert.equal(await r.llen(h.key(q, 'paused')), 0);
});

test('duplicate jobId is a no-op and runs once', async t => {
  const { q, Q, w } = await setup(t, 'dup');
  const dups = [];
  await h.onGlobal(Q, 'global:duplicated', id => dups.push(String(id)));
  const a = await Q.add('sleep', { ms: 300, v: 1 }, { jobId: 'dup-a' });
  const idBefore = Number(await r.get(h.key(q, 'id')));
  const b = await Q.add('sleep', { ms: 5, v: 2 }, { jobId: 'dup-a' });
  assert.equal(b.id, 'dup-a');
  assert.equal(Number(await r.get(h.key(q, 'id'))), idBefore + 1, 'K(id) is INCRed by the duplicate too');
  await h.waitFinished(r, q, 'dup-a');
  const c = await Q.add('echo', { v: 3 }, { jobId: 'dup-a' }); // after completion: still a duplicate
  assert.equal(c.id, 'dup-a');
  const sentinel = await Q.add('noop', {});
  await h.within(sentinel.finished(), 10000, 'sentinel');
  const hash = await h.jobHash(r, q, 'dup-a');
  assert.deepEqual(JSON.parse(hash.data), { ms: 300, v: 1 });
  assert.deepEqual(JSON.parse(hash.returnvalue), { slept: 300 });
  assert.equal(jobIds(w, 'dup-a').length, 1, 'processed once');
  await h.waitFor(() => dups.length >= 2, { message: 'two global:duplicated' });
  assert.deepEqual(dups, ['dup-a', 'dup-a']);
});

test('debounce: one job per debounce id; the key is cleared on completion unless it has a TTL', async t => {
  const { q, Q, w } = await setup(t, 'debounce');
  const blocker = await Q.add('sleep', { ms: 400 }); // keeps the concurrency-1 worker busy
  await w.waitLog('job.active', { jobId: String(blocker.id) });
  const a = await Q.add('echo', { n: 1 }, { debounce: { id: 'd1' } });
  const b = await Q.add('echo', { n: 2 }, { debounce: { id: 'd1' } });
  assert.equal(String(b.id), String(a.id));
  assert.equal(await r.get(h.key(q, 'de:d1')), String(a.id));
  const ttlJob = await Q.add('echo', { n: 3 }, { debounce: { id: 'd2', ttl: 60000 } });
  const hashA = await h.waitFinished(r, q, a.id);
  assert.deepEqual(JSON.parse(hashA.returnvalue), { n: 1 });
  assert.equal(hashA.deid, 'd1');
  await h.waitFinished(r, q, ttlJob.id);
  assert.equal(await r.exists(h.key(q, 'de:d1')), 0, 'debounce key without TTL deleted on completion');
  const pttl = await r.pttl(h.key(q, 'de:d2'));
  assert.ok(pttl > 0, `debounce key with TTL kept (pttl ${pttl})`);
  const c = await Q.add('echo', { n: 4 }, { debounce: { id: 'd1' } });
  assert.notEqual(String(c.id), String(a.id));
  assert.deepEqual(await h.within(c.finished(), 10000, 'c'), { n: 4 });
  assert.equal(jobIds(w, a.id).length, 1);
  assert.equal(await r.zcard(h.key(q, 'completed')), 4);
});

test('getWorkers() counts our worker', async t => {
  const { q, Q, w } = await setup(t, 'workers');
  // The worker names its blocking connection (CLIENT SETNAME) right after
  // it logs the connection: the name can trail the log line by a moment.
  const ws = await h.waitFor(async () => { const l = await Q.getWorkers(); return l.length ? l : null; },
    { message: 'getWorkers() to list the worker' });
  assert.equal(ws.length, 1, JSON.stringify(ws));
  assert.equal(ws[0].name, q);
  const res = await w.stop();
  assert.equal(res.code, 0);
  assert.deepEqual(await Q.getWorkers(), []);
});

test('a job whose data is not JSON fails with a readable reason; the worker keeps running', async t => {
  const { q, Q, w } = await setup(t, 'badjson');
  const failed = [];
  await h.onGlobal(Q, 'global:failed', (id, reason) => failed.push([String(id), reason]));
  const id = String(await r.incr(h.key(q, 'id')));
  const now = Date.now();
  await r.hset(h.key(q, id), 'name', 'echo', 'data', '{"not json', 'opts',
    JSON.stringify({ attempts: 1, delay: 0, timestamp: now }), 'timestamp', String(now), 'delay', '0', 'priority', '0');
  await r.lpush(h.key(q, 'wait'), id);
  const hash = await h.waitFinished(r, q, id, 'failed', 10000);
  assert.ok(typeof hash.failedReason === 'string' && hash.failedReason.length > 0, 'has a failedReason');
  assert.match(hash.failedReason, /json|data|pars/i, `readable reason: ${hash.failedReason}`);
  assert.ok(hash.finishedOn);
  await h.waitFor(() => failed.length >= 1, { message: 'global:failed' });
  assert.deepEqual(failed[0], [id, hash.failedReason]);
  const next = await Q.add('echo', { ok: 1 });
  assert.deepEqual(await h.within(next.finished(), 10000, 'next job'), { ok: 1 });
  assert.ok(w.running);
  assert.equal((await h.counts(r, q)).active, 0);
});

test('job.retry() of a failed job (Node) is reprocessed by C', async t => {
  const { q, Q, w } = await setup(t, 'retry');
  const job = await Q.add('fail', { message: 'first time', times: 1 });
  await assert.rejects(h.within(job.finished(), 10000, 'first run'), { message: 'first time' });
  const failedHash = await h.jobHash(r, q, job.id);
  assert.equal(failedHash.attemptsMade, '1');
  const got = await Q.getJob(job.id);
  await got.retry();
  const hash = await h.waitFinished(r, q, job.id, 'completed', 10000);
  assert.deepEqual(JSON.parse(hash.returnvalue), { ok: true, attempts: 2 });
  assert.ok(Number(hash.retriedOn) > 0, 'retriedOn set');
  assert.equal(hash.failedReason, undefined, 'reprocessJob removed failedReason');
  assert.equal(await r.zscore(h.key(q, 'failed'), job.id), null);
  assert.equal(jobIds(w, job.id).length, 2);
  assert.deepEqual(await h.within((await Q.getJob(job.id)).finished(), 5000, 'finished'), { ok: true, attempts: 2 });
});

test('erpq_job_delay: our handler puts a job back to delayed without using an attempt; a Node worker runs it when due', async t => {
  const { q, Q, w } = await setup(t, 'postpone');
  const until = Date.now() + 1500;
  // attempts: 1 — had the postponement used an attempt, the job could not run again.
  const job = await Q.add('throttle', { until }, { attempts: 1 });
  await w.waitLog('job.postponed', { jobId: String(job.id) });
  const hash = await h.jobHash(r, q, job.id);
  assert.ok(!hash.attemptsMade || hash.attemptsMade === '0', `attemptsMade ${hash.attemptsMade}`);
  assert.equal(hash.failedReason, undefined);
  assert.equal(hash.stacktrace, undefined);
  assert.equal(await r.exists(h.key(q, `${job.id}:lock`)), 0, 'lock released');
  assert.deepEqual(await r.lrange(h.key(q, 'active'), 0, -1), []);
  const score = Number(await r.zscore(h.key(q, 'delayed'), String(job.id)));
  const due = Math.floor(score / 4096);
  assert.ok(Math.abs(due - until) < 100, `due ${due} vs until ${until}`);
  assert.equal(score % 4096, Number(job.id) & 0xfff, "bull's delayed score");
  const state = await (await Q.getJob(job.id)).getState();
  assert.equal(state, 'delayed', 'Node bull sees an ordinary delayed job');
  // Our worker goes away; a Node bull worker promotes and runs the job.
  await w.stop();
  const nw = await h.startNodeWorker({ queue: q, handlers: ['throttle'] });
  t.after(() => nw.kill9());
  const result = await h.within(job.finished(), 15000, 'the Node worker to finish the job');
  assert.deepEqual(result, { until, by: 'node' });
  const done = await h.jobHash(r, q, job.id);
  assert.ok(Number(done.finishedOn) >= until, 'not run before it was due');
  assert.ok(Number(done.attemptsMade || 0) <= 1, `attemptsMade ${done.attemptsMade}`);
  assert.equal(done.failedReason, undefined);
});
