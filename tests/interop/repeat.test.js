'use strict';
// Repeatable jobs added by Node bull 4.16.5 and continued by erpq-worker
// alone: no Node worker touches these queues (except the one shadow queue of
// the first test, which is a different queue). After every pickup our worker
// must schedule exactly the job a Node worker would (bull's repeatable.js),
// with the same id, delayed score, repeat zset score and opts.
const crypto = require('node:crypto');
const { test, after } = require('node:test');
const _ = require('lodash'); // bull's own dependencies, as bull uses them
const parser = require('cron-parser');
const h = require('./lib/harness');
const { assert } = h;

h.env(); // fails the file (not skips) without ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL
const r = h.redis();
after(() => h.cleanup());

// ---- bull 4.16.5 lib/repeatable.js, verbatim in substance ----------------
const md5 = s => crypto.createHash('md5').update(s).digest('hex');
function getRepeatJobId(name, jobId, nextMillis, namespace) {
  return 'repeat:' + md5(name + jobId + namespace) + ':' + nextMillis;
}
function getRepeatKey(name, repeat, jobId) {
  const endDate = repeat.endDate ? new Date(repeat.endDate).getTime() + ':' : ':';
  const tz = repeat.tz ? repeat.tz + ':' : ':';
  const suffix = repeat.cron ? tz + repeat.cron : String(repeat.every);
  return name + ':' + jobId + endDate + suffix;
}
function getNextMillis(millis, opts) {
  if (opts.every) return Math.floor(millis / opts.every) * opts.every + opts.every;
  const currentDate = opts.startDate && new Date(opts.startDate) > new Date(millis)
    ? new Date(opts.startDate) : new Date(millis);
  const interval = parser.parseExpression(opts.cron, _.defaults({ currentDate }, opts));
  try {
    return interval.next().getTime();
  } catch {
    return undefined;
  }
}
/** The job id bull gives occurrence millis of (name, repeat, jobId option). */
function repeatId(name, repeat, millis) {
  const jobIdPart = repeat.jobId ? repeat.jobId + ':' : ':';
  return getRepeatJobId(name, jobIdPart, millis, md5(getRepeatKey(name, repeat, jobIdPart)));
}
function repeatKeyOf(name, repeat) {
  return getRepeatKey(name, repeat, repeat.jobId ? repeat.jobId + ':' : ':');
}
/**
 * What a Node worker's nextRepeatableJob creates when it picks up a job with
 * these opts at time now: null (chain ends) or {id, millis, opts}; opts.delay
 * and opts.timestamp are left out (they depend on the instant of the add).
 */
function nodeNext(name, storedOpts, now) {
  const opts = _.cloneDeep(storedOpts);
  const repeat = opts.repeat;
  const prevMillis = opts.prevMillis || 0;
  if (!prevMillis && opts.jobId) repeat.jobId = opts.jobId;
  const currentCount = repeat.count ? repeat.count + 1 : 1;
  if (!_.isUndefined(repeat.limit) && currentCount > repeat.limit) return null;
  if (!_.isUndefined(repeat.endDate) && now > new Date(repeat.endDate)) return null;
  now = prevMillis < now ? now : prevMillis;
  const millis = getNextMillis(now, repeat);
  if (!millis) return null;
  const jobIdPart = repeat.jobId ? repeat.jobId + ':' : ':';
  const key = getRepeatKey(name, repeat, jobIdPart);
  const id = getRepeatJobId(name, jobIdPart, millis, md5(key));
  const next = _.defaultsDeep({ repeat: { count: currentCount, key }, jobId: id, prevMillis: millis }, opts);
  delete next.delay;
  delete next.timestamp;
  return { id, millis, key, opts: next };
}
// ---------------------------------------------------------------------------

const REPEAT_ID = /^repeat:[0-9a-f]{32}:(\d+)$/;
const millisOf = id => Number(REPEAT_ID.exec(id)[1]);

/** Every repeat job hash of queue q, sorted by occurrence: [{id, millis, hash, opts}]. */
async function repeatJobs(q) {
  const keys = [];
  let cursor = '0';
  do {
    const [c, ks] = await r.scan(cursor, 'MATCH', h.key(q, 'repeat:*'), 'COUNT', 1000);
    cursor = c;
    keys.push(...ks);
  } while (cursor !== '0');
  const ids = keys.map(k => k.slice(h.key(q).length)).filter(id => REPEAT_ID.test(id));
  const out = [];
  for (const id of ids) {
    const hash = await h.jobHash(r, q, id);
    if (hash) out.push({ id, millis: millisOf(id), hash, opts: JSON.parse(hash.opts) });
  }
  return out.sort((a, b) => a.millis - b.millis);
}

/**
 * Checks a chain our worker continued: job k+1 is exactly what a Node worker
 * picking up job k at its processedOn would have created, and a processed
 * last job is one after which Node would have stopped too (unless the
 * repeatable was removed: ended false).
 */
function checkChain(name, jobs, { ended = true } = {}) {
  for (let k = 0; k < jobs.length; k++) {
    const j = jobs[k];
    assert.equal(j.opts.jobId, j.id, `opts.jobId of ${j.id}`);
    assert.equal(j.opts.prevMillis, j.millis, `opts.prevMillis of ${j.id}`);
    assert.equal(j.hash.name, name);
    assert.equal(j.hash.timestamp, String(j.opts.timestamp), `hash timestamp = opts.timestamp (${j.id})`);
    assert.ok(Number.isInteger(j.opts.timestamp) && Number.isInteger(j.opts.delay), `timestamp/delay in opts of ${j.id}`);
    if (k === 0) continue;
    const prev = jobs[k - 1];
    assert.ok(prev.hash.processedOn, `job ${prev.id} was processed before ${j.id} existed`);
    const want = nodeNext(name, prev.opts, Number(prev.hash.processedOn));
    assert.ok(want, `Node would not have scheduled anything after ${prev.id} (count ${prev.opts.repeat.count})`);
    assert.equal(j.id, want.id, `id of the job after ${prev.id}`);
    const got = { ...j.opts };
    delete got.delay;
    delete got.timestamp;
    assert.deepEqual(got, want.opts, `opts of ${j.id}`);
    // Created at the pickup of prev: timestamp ~ prev.processedOn, delay = due - timestamp.
    const ts = j.opts.timestamp;
    assert.ok(ts >= Number(prev.hash.processedOn) - 5 && ts <= Number(prev.hash.processedOn) + 1000,
      `timestamp ${ts} of ${j.id} near the pickup of ${prev.id} (${prev.hash.processedOn})`);
    assert.equal(j.opts.delay, Math.max(0, j.millis - ts), `opts.delay of ${j.id}`);
  }
  const last = jobs[jobs.length - 1];
  if (ended && last && last.hash.processedOn) {
    const want = nodeNext(name, last.opts, Number(last.hash.processedOn));
    assert.equal(want, null, `Node would schedule ${want && want.id} after the last job ${last.id}`);
  }
}

/** A fresh queue with our worker on it and a Node Queue for adding. */
async function setup(t, tag, { start = true } = {}) {
  const q = h.qname(tag);
  const Q = h.queue(q);
  await Q.isReady();
  const s = { q, Q, w: null };
  s.start = async () => {
    // --diag-catch-all: any job name runs (diag '*' returns {name, data}).
    s.w = await h.startWorker({ queue: q, args: ['--diag-catch-all'] });
    return s.w;
  };
  if (start) await s.start();
  t.after(async () => {
    if (s.w) await s.w.kill9();
  });
  return s;
}

const completedCount = q => r.zcard(h.key(q, 'completed'));
const untilTime = (ms, what) => h.waitFor(() => Date.now() >= ms, { timeout: Math.max(0, ms - Date.now()) + 2000, message: what });
/** Waits until the ms-within-period phase of the clock lies in [lo, hi). */
const phase = (period, lo, hi) => h.waitFor(() => {
  const p = Date.now() % period;
  return p >= lo && p < hi;
}, { timeout: period + 500, interval: 5, message: `clock phase ${lo}..${hi} of ${period}` });

test('every 1000 ms, limit 3: ids, scores and opts as Node makes them, exactly 3 runs', async t => {
  const { q, Q, w } = await setup(t, 'every');
  // A shadow queue run by a Node worker gets the same add: same ids expected.
  const nq = h.qname('every-node');
  const N = h.queue(nq);
  await N.isReady();
  const nodeIds = [];
  N.process('echo', async job => {
    nodeIds.push(String(job.id));
    return job.data;
  });
  const repeat = { every: 1000, limit: 3 };
  const key = repeatKeyOf('echo', repeat);
  assert.equal(key, 'echo:::1000');
  const repeatScores = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const s = await r.zscore(h.key(q, 'repeat'), key);
      if (s !== null && repeatScores[repeatScores.length - 1] !== Number(s)) repeatScores.push(Number(s));
      await h.sleep(10);
    }
  })();
  t.after(async () => {
    polling = false;
    await poller;
  });
  await phase(1000, 50, 500); // both adds in the same second
  const first = await Q.add('echo', { n: 1 }, { repeat, attempts: 2 });
  await N.add('echo', { n: 1 }, { repeat, attempts: 2 });
  assert.match(String(first.id), REPEAT_ID);
  const m0 = millisOf(String(first.id));
  assert.equal(String(first.id), repeatId('echo', repeat, m0), 'first id = bull md5 formula');
  await h.waitFor(async () => (await completedCount(q)) === 3, { timeout: 8000, message: '3 completed' });
  // Past the would-be 4th occurrence (+1 s margin): still exactly 3.
  await untilTime(m0 + 4000, 'the 4th occurrence to pass');
  await h.waitFor(() => nodeIds.length === 3, { timeout: 3000, message: 'Node shadow ran 3 jobs' });
  polling = false;
  await poller;

  const jobs = await repeatJobs(q);
  assert.deepEqual(jobs.map(j => j.millis), [m0, m0 + 1000, m0 + 2000]);
  assert.deepEqual(jobs.map(j => j.opts.repeat.count), [1, 2, 3]);
  for (const j of jobs) assert.equal(j.id, repeatId('echo', repeat, j.millis));
  checkChain('echo', jobs);
  assert.deepEqual(nodeIds, jobs.map(j => j.id), 'the Node worker made the same ids on its queue');
  assert.deepEqual(h.activeIds(w, q), jobs.map(j => j.id), 'our worker ran each occurrence once');
  assert.equal(await completedCount(q), 3, 'limit 3 respected');
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: 3, failed: 0, priority: 0 });
  assert.deepEqual(repeatScores, [m0, m0 + 1000, m0 + 2000], 'repeat zset score advanced per occurrence');
  const reps = await Q.getRepeatableJobs();
  assert.deepEqual(reps, [{ key, name: 'echo', id: null, endDate: null, tz: null, cron: null, every: 1000, next: m0 + 2000 }]);
  for (const j of jobs) assert.deepEqual(JSON.parse(j.hash.returnvalue), { n: 1 });
});

test('cron */2 (6 fields) with tz Asia/Kolkata, limit 2', async t => {
  const { q, Q, w } = await setup(t, 'cron6');
  const repeat = { cron: '*/2 * * * * *', tz: 'Asia/Kolkata', limit: 2 };
  const key = repeatKeyOf('tick', repeat);
  assert.equal(key, 'tick:::Asia/Kolkata:*/2 * * * * *');
  await phase(2000, 100, 1500);
  const t0 = Date.now();
  const first = await Q.add('tick', { c: 6 }, { repeat });
  const m0 = millisOf(String(first.id));
  assert.equal(m0, getNextMillis(t0, repeat));
  assert.equal(m0 % 2000, 0);
  assert.equal(String(first.id), repeatId('tick', repeat, m0));
  await h.waitFor(async () => (await completedCount(q)) === 2, { timeout: 8000, message: '2 completed' });
  await untilTime(m0 + 5000, 'the 3rd occurrence to pass');
  const jobs = await repeatJobs(q);
  assert.deepEqual(jobs.map(j => j.millis), [m0, m0 + 2000]);
  checkChain('tick', jobs);
  assert.equal(await completedCount(q), 2, 'limit 2 respected');
  assert.deepEqual(h.activeIds(w, q), jobs.map(j => j.id));
  assert.equal(Number(await r.zscore(h.key(q, 'repeat'), key)), m0 + 2000, 'repeat score at the last occurrence');
  assert.equal((await h.counts(r, q)).delayed, 0);
  for (const j of jobs) {
    assert.deepEqual(JSON.parse(j.hash.returnvalue), { name: 'tick', data: { c: 6 } }, 'run by the catch-all');
    assert.ok(Number(j.hash.processedOn) >= j.millis, `${j.id} not run before its time`);
  }
});

test('5-field cron with tz: the next job our worker schedules (promote, no waiting)', async t => {
  const { q, Q, w } = await setup(t, 'cron5');
  const specs = [
    { name: 'weekly-ist', repeat: { cron: '15 1 * * 1', tz: 'Asia/Kolkata' } },
    { name: 'friday-ny', repeat: { cron: '0 23 * * 5', tz: 'America/New_York' }, jobId: 'fri' },
    { name: 'quarter-hour', repeat: { cron: '*/15 * * * *', tz: 'Asia/Kolkata' } },
  ];
  for (const s of specs) {
    const opts = { repeat: s.repeat };
    if (s.jobId) opts.jobId = s.jobId;
    const t0 = Date.now();
    const first = await Q.add(s.name, { s: s.name }, opts);
    const m0 = millisOf(String(first.id));
    const rep = { ...s.repeat, jobId: s.jobId };
    const want0 = getNextMillis(t0, s.repeat);
    assert.ok(m0 === want0 || m0 === getNextMillis(Date.now(), s.repeat), `${s.name} first occurrence ${m0}`);
    assert.equal(String(first.id), repeatId(s.name, rep, m0));
    // Promote the first occurrence: our worker runs it now and schedules the next.
    await (await Q.getJob(first.id)).promote();
    await h.waitFinished(r, q, first.id);
    const key = repeatKeyOf(s.name, rep);
    const firstHash = await h.jobHash(r, q, first.id);
    const want = nodeNext(s.name, JSON.parse(firstHash.opts), Number(firstHash.processedOn));
    assert.ok(want && want.millis > m0);
    const exp = parser.parseExpression(s.repeat.cron, { currentDate: new Date(m0), tz: s.repeat.tz });
    assert.equal(want.millis, exp.next().getTime(), 'sanity: the next cron-parser occurrence after the first');
    await h.waitFor(async () => (await r.zscore(h.key(q, 'delayed'), want.id)) !== null, {
      timeout: 5000, message: async () => `delayed ${want.id} for ${s.name}; delayed=${JSON.stringify(await r.zrange(h.key(q, 'delayed'), 0, -1))}`,
    });
    const score = Number(await r.zscore(h.key(q, 'delayed'), want.id));
    assert.equal(Math.floor(score / 4096), want.millis, `${s.name}: delayed score is due*4096+low bits`);
    assert.equal(Number(await r.zscore(h.key(q, 'repeat'), key)), want.millis, `${s.name}: repeat score advanced`);
    const hash = await h.jobHash(r, q, want.id);
    const opts2 = JSON.parse(hash.opts);
    assert.equal(hash.delay, String(opts2.delay));
    assert.equal(hash.timestamp, String(opts2.timestamp));
    assert.equal(opts2.timestamp + opts2.delay, want.millis, 'timestamp + delay = occurrence');
    const jobs = [{ id: String(first.id), millis: m0, hash: firstHash, opts: JSON.parse(firstHash.opts) },
      { id: want.id, millis: want.millis, hash, opts: opts2 }];
    checkChain(s.name, jobs);
    const reps = (await Q.getRepeatableJobs()).filter(x => x.key === key);
    assert.equal(reps.length, 1);
    assert.equal(reps[0].next, want.millis);
    assert.equal(reps[0].tz, s.repeat.tz);
    assert.equal(reps[0].cron, s.repeat.cron);
    s.key = key;
    s.nextId = want.id;
  }
  // removeRepeatableByKey deletes the job our worker scheduled (its id and
  // the repeat score agree) and the chain is gone.
  for (const s of specs) {
    await Q.removeRepeatableByKey(s.key);
    assert.equal(await r.zscore(h.key(q, 'repeat'), s.key), null);
    assert.equal(await r.exists(h.key(q, s.nextId)), 0, `${s.name}: scheduled job ${s.nextId} deleted`);
  }
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: 3, failed: 0, priority: 0 });
  assert.equal(h.activeIds(w, q).length, 3);
});

test('jobId in repeat opts: kept in repeat.jobId and part of every id', async t => {
  const { q, Q, w } = await setup(t, 'jobid');
  const repeat = { every: 1000, limit: 2 };
  await phase(1000, 50, 600);
  const first = await Q.add('echo', { j: 1 }, { repeat, jobId: 'nightly' });
  const rep = { ...repeat, jobId: 'nightly' };
  const key = repeatKeyOf('echo', rep);
  assert.equal(key, 'echo:nightly::1000');
  const m0 = millisOf(String(first.id));
  assert.equal(String(first.id), repeatId('echo', rep, m0));
  await h.waitFor(async () => (await completedCount(q)) === 2, { timeout: 6000, message: '2 completed' });
  await untilTime(m0 + 3000, 'the 3rd occurrence to pass');
  const jobs = await repeatJobs(q);
  assert.deepEqual(jobs.map(j => j.id), [repeatId('echo', rep, m0), repeatId('echo', rep, m0 + 1000)]);
  for (const j of jobs) {
    assert.equal(j.opts.repeat.jobId, 'nightly');
    assert.equal(j.opts.repeat.key, key);
  }
  checkChain('echo', jobs);
  assert.equal(await completedCount(q), 2);
  assert.deepEqual(h.activeIds(w, q), jobs.map(j => j.id));
  const reps = await Q.getRepeatableJobs();
  assert.equal(reps.length, 1);
  assert.equal(reps[0].id, 'nightly');
});

test('endDate (cron, every second): no occurrence after it', async t => {
  const { q, Q, w } = await setup(t, 'enddate');
  await phase(1000, 50, 400);
  const endDate = new Date(Math.floor(Date.now() / 1000) * 1000 + 3500); // mid-second
  const repeat = { cron: '* * * * * *', endDate };
  const first = await Q.add('tick', { e: 1 }, { repeat });
  const stored = JSON.parse((await h.jobHash(r, q, first.id)).opts);
  assert.equal(stored.repeat.endDate, endDate.toISOString(), 'endDate stored as an ISO string');
  const key = repeatKeyOf('tick', repeat);
  assert.equal(key, `tick::${endDate.getTime()}::* * * * * *`);
  const m0 = millisOf(String(first.id));
  const lastWanted = Math.floor(endDate.getTime() / 1000) * 1000;
  await untilTime(endDate.getTime() + 1600, 'endDate + 1.6 s');
  await h.waitFor(async () => (await h.counts(r, q)).active === 0, { timeout: 3000, message: 'no active job' });
  const jobs = await repeatJobs(q);
  const want = [];
  for (let m = m0; m <= lastWanted; m += 1000) want.push(m);
  assert.deepEqual(jobs.map(j => j.millis), want, 'occurrences up to endDate and none after');
  checkChain('tick', jobs);
  assert.equal(await completedCount(q), want.length);
  assert.equal((await h.counts(r, q)).delayed, 0);
  assert.deepEqual(h.activeIds(w, q), jobs.map(j => j.id));
});

test('endDate (every 1000): bull schedules at pickup while now <= endDate, then stops', async t => {
  const { q, Q, w } = await setup(t, 'enddate-every');
  await phase(1000, 50, 400);
  const endDate = Math.floor(Date.now() / 1000) * 1000 + 2500; // number, mid-second
  const repeat = { every: 1000, endDate };
  const first = await Q.add('tick', { e: 2 }, { repeat });
  const m0 = millisOf(String(first.id));
  assert.equal(repeatKeyOf('tick', repeat), `tick::${endDate}:1000`);
  // Pickups at m0 (< endDate) and m0+1000 (< endDate) schedule m0+1000 and
  // m0+2000 (> endDate, as Node does for `every`); the pickup at m0+2000 stops.
  await untilTime(m0 + 3600, 'one interval past the last occurrence');
  await h.waitFor(async () => (await h.counts(r, q)).active === 0, { timeout: 3000, message: 'no active job' });
  const jobs = await repeatJobs(q);
  checkChain('tick', jobs);
  assert.ok(jobs.length >= 2 && jobs.length <= 3, `occurrences ${jobs.map(j => j.millis - m0)}`);
  const last = jobs[jobs.length - 1];
  assert.ok(Number(last.hash.processedOn) > endDate, 'the last job was picked up after endDate');
  assert.equal(await completedCount(q), jobs.length);
  assert.equal((await h.counts(r, q)).delayed, 0);
  assert.deepEqual(h.activeIds(w, q), jobs.map(j => j.id));
});

test('startDate in the future: the first run is not before it', async t => {
  const { q, Q, w } = await setup(t, 'startdate');
  await phase(1000, 100, 500);
  const startDate = new Date(Date.now() + 2000);
  const repeat = { cron: '* * * * * *', startDate, limit: 2 };
  const first = await Q.add('tick', { s: 1 }, { repeat });
  const m0 = millisOf(String(first.id));
  assert.equal(m0, getNextMillis(Date.now(), repeat));
  assert.ok(m0 > startDate.getTime() && m0 <= startDate.getTime() + 1000);
  assert.equal(String(first.id), repeatId('tick', repeat, m0));
  await h.waitFor(async () => (await completedCount(q)) === 2, { timeout: 8000, message: '2 completed' });
  await untilTime(m0 + 2500, 'the 3rd occurrence to pass');
  const jobs = await repeatJobs(q);
  assert.deepEqual(jobs.map(j => j.millis), [m0, m0 + 1000]);
  checkChain('tick', jobs);
  for (const j of jobs) assert.ok(Number(j.hash.processedOn) >= startDate.getTime(), `${j.id} ran before startDate`);
  assert.equal(await completedCount(q), 2);
  assert.deepEqual(h.activeIds(w, q), jobs.map(j => j.id));
});

test('removeRepeatable(name, repeat) stops a live `every` chain under our worker', async t => {
  const { q, Q, w } = await setup(t, 'rmrep');
  const repeat = { every: 1000 };
  const first = await Q.add('noop', {}, { repeat });
  const m0 = millisOf(String(first.id));
  await h.waitFor(async () => (await completedCount(q)) === 2, { timeout: 6000, message: '2 completed' });
  // Right after a completion: the next occurrence waits in delayed.
  const pending = repeatId('noop', repeat, m0 + 2000);
  await h.waitFor(async () => (await r.zscore(h.key(q, 'delayed'), pending)) !== null, { timeout: 2000, message: `pending ${pending}` });
  const before = (await repeatJobs(q)).map(j => j.id);
  await Q.removeRepeatable('noop', repeat);
  assert.equal(await r.zcard(h.key(q, 'repeat')), 0);
  assert.equal(await r.exists(h.key(q, pending)), 0, 'the scheduled occurrence was deleted');
  await untilTime(m0 + 5000, 'three more intervals');
  const afterIds = (await repeatJobs(q)).map(j => j.id);
  for (const id of afterIds) assert.ok(before.includes(id), `job ${id} created after removeRepeatable`);
  assert.ok(h.activeIds(w, q).every(id => before.includes(id) && id !== pending));
  assert.deepEqual(await h.counts(r, q), { wait: 0, active: 0, paused: 0, delayed: 0, completed: 2, failed: 0, priority: 0 });
});

test('removeRepeatableByKey stops a live cron chain (tz, jobId) under our worker', async t => {
  const { q, Q, w } = await setup(t, 'rmkey');
  const repeat = { cron: '* * * * * *', tz: 'Asia/Kolkata' };
  const first = await Q.add('tick', { k: 1 }, { repeat, jobId: 'rk' });
  const key = repeatKeyOf('tick', { ...repeat, jobId: 'rk' });
  assert.equal(key, 'tick:rk::Asia/Kolkata:* * * * * *');
  const m0 = millisOf(String(first.id));
  await h.waitFor(async () => (await completedCount(q)) === 2, { timeout: 6000, message: '2 completed' });
  const score = await h.waitFor(async () => {
    const s = await r.zscore(h.key(q, 'repeat'), key);
    return s !== null && Number(s) === m0 + 2000 && s;
  }, { timeout: 2000, message: 'repeat score at the 3rd occurrence' });
  assert.equal(score, String(m0 + 2000), 'repeat score stored as an integer');
  const pending = repeatId('tick', { ...repeat, jobId: 'rk' }, m0 + 2000);
  const before = (await repeatJobs(q)).map(j => j.id);
  assert.ok(before.includes(pending));
  const reps = await Q.getRepeatableJobs();
  assert.deepEqual(reps.map(x => x.key), [key]);
  await Q.removeRepeatableByKey(reps[0].key);
  assert.equal(await r.zcard(h.key(q, 'repeat')), 0);
  await untilTime(m0 + 5000, 'three more occurrences');
  const afterIds = (await repeatJobs(q)).map(j => j.id);
  for (const id of afterIds) assert.ok(before.includes(id), `job ${id} created after removeRepeatableByKey`);
  const c = await h.counts(r, q);
  assert.equal(c.delayed + c.wait + c.active, 0, JSON.stringify(c));
  assert.ok(c.completed === 2 || c.completed === 3, `completed ${c.completed}`);
  checkChain('tick', await repeatJobs(q), { ended: false });
  assert.ok(h.activeIds(w, q).length === c.completed);
});
