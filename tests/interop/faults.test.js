'use strict';
// Fault injection against a running erpq-worker (issue: the worker aborted
// after a Redis restart). Each test runs jobs through the worker while
// something happens to Redis, then asserts that
//   - the worker process is still alive (no abort, no exit),
//   - processing resumes within 5 s of Redis answering again,
//   - in the end every job is completed exactly once by our worker, none is
//     left active or waiting, and a SIGTERM still ends the worker with 0.
// Faults: Redis restarted (AOF on, a dataset slow to load so that the worker
// meets LOADING), CLIENT KILL TYPE pubsub and TYPE normal, DEBUG SLEEP longer
// than the lock renewal period.
//
// The same file runs under valgrind (tests/valgrind/run sets
// ERPQ_BIN_WRAPPER); timings then stretch, but the 5 s resume bound is
// measured from Redis being back, which valgrind does not slow down.
const { test, after } = require('node:test');
const h = require('./lib/harness');
const { assert } = h;

after(h.cleanup);

const RESUME_MS = 5000;
// A reply lost with its connection (a fetch that Redis ran just before it
// went away) leaves a job in active that no worker runs: bull's answer, and
// ours, is the lock expiring and the stalled check moving it back, so these
// tests use short locks and checks to see that happen within the test.
const RECOVERY = ['--lock-duration', '3000', '--stalled-interval', '1000'];
const SETTLE_MS = h.wrapped ? 240000 : 60000;

/** Adds n `sleep` jobs of ms milliseconds with q (a Node bull Queue). */
async function addSleeps(q, n, ms) {
  const jobs = await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'sleep', data: { ms, i } })));
  return jobs.map(j => String(j.id));
}

/**
 * Resolves once the worker logs a job.completed it had not logged when
 * called, or fails after RESUME_MS; returns the milliseconds it took.
 */
async function resumes(w, what) {
  const seen = w.events('job.completed').length;
  const t0 = Date.now();
  await h.waitFor(() => w.events('job.completed').length > seen, {
    timeout: RESUME_MS, interval: 10,
    message: () => `processing to resume after ${what}; worker running=${w.running}; last lines: ${w.tail(6)}`,
  });
  return Date.now() - t0;
}

/**
 * Every id ends in completed, none is left in wait or active or failed, and
 * no completion of the same job was accepted twice (our worker logs
 * job.completed only for a finish Redis accepted; a job re-run after its
 * lock lapsed, or whose finish was re-sent after a lost reply, is refused
 * the second time by the lock check).
 */
async function allDoneOnce(r, qn, w, ids) {
  await h.waitFor(async () => (await r.zcard(h.key(qn, 'completed'))) === ids.length, {
    timeout: SETTLE_MS, interval: 100,
    message: async () => {
      const active = await r.lrange(h.key(qn, 'active'), 0, -1);
      const lines = w.logs.filter(l => active.includes(l.jobId)).map(l => JSON.stringify(l));
      return `all ${ids.length} jobs completed; counts=${JSON.stringify(await h.counts(r, qn))}; ` +
        `active ${active}: ${lines.join('\n  ')}; worker: ${w.tail(6)}`;
    },
  });
  const c = await h.counts(r, qn);
  assert.equal(c.active, 0, `no job left active: ${JSON.stringify(c)}`);
  assert.equal(c.wait, 0);
  assert.equal(c.failed, 0, `no job failed: ${JSON.stringify(c)}`);
  for (const id of ids) assert.notEqual(await r.zscore(h.key(qn, 'completed'), id), null, `job ${id} completed`);
  const done = new Map();
  for (const l of w.events('job.completed', { queue: qn })) done.set(l.jobId, (done.get(l.jobId) || 0) + 1);
  for (const [id, n] of done) assert.equal(n, 1, `job ${id}: completion accepted ${n} times`);
}

function assertAlive(w, what) {
  assert.ok(w.running, `worker alive after ${what}; exit=${JSON.stringify(w.exitInfo)}; ${w.tail(10)}`);
  assert.ok(!w.stderr.some(l => /Assertion|AddressSanitizer|runtime error/.test(l)), w.stderr.join('\n'));
}

async function stopClean(w, t) {
  const ran = Date.now() - w.startedAt;
  const { code, signal } = await w.stop(h.wrapped ? 120000 : 15000);
  if (t) t.diagnostic(`worker ran ${ran} ms${h.wrapped ? ' under valgrind' : ''}, ${w.events('redis.connected').length} ` +
    `connections made (${w.events('redis.disconnected').length} lost), ${w.events('job.completed').length} jobs completed`);
  assert.equal(signal, null, `worker exited by itself: ${w.tail(10)}`);
  assert.equal(code, 0, `worker exit code: ${w.tail(10)}`);
}

test('Redis restarted twice with AOF on while jobs run: the worker rides through LOADING', async t => {
  // key-load-delay makes every key take 40 us to load; 50,000 padding keys
  // keep the restarted server in LOADING for about two seconds.
  const srv = await h.startRedis({
    args: ['--appendonly', 'yes', '--appendfsync', 'always', '--key-load-delay', '40',
      '--enable-debug-command', 'local'],
  });
  // DEBUG POPULATE is not written to the AOF: a rewrite puts the keys into
  // its base file, which a restart then loads key by key.
  srv.cli('DEBUG', 'POPULATE', '50000', 'pad', '8');
  srv.cli('BGREWRITEAOF');
  await h.waitFor(() => /aof_rewrite_in_progress:0/.test(srv.cli('INFO', 'persistence')) &&
    /aof_rewrite_scheduled:0/.test(srv.cli('INFO', 'persistence')), { timeout: 20000, message: 'AOF rewrite' });
  const r = h.redis(srv.url);
  const qn = h.qname('aof');
  const w = await h.startWorker({ queue: qn, concurrency: 4, redisUrl: srv.url, args: RECOVERY });
  const q = h.queue(qn, {}, srv.url);
  const ids = await addSleeps(q, 400, 20);
  await h.waitFor(() => w.events('job.completed').length >= 20, { timeout: 30000, message: 'first jobs done' });

  for (let round = 1; round <= 2; round++) {
    await srv.shutdown();
    const t0 = Date.now();
    await srv.start();
    await h.waitFor(() => srv.cli('PING') === 'PONG', { timeout: 30000, interval: 10, message: 'AOF loaded' });
    const loadMs = Date.now() - t0;
    assertAlive(w, `restart ${round}`);
    const ms = await resumes(w, `restart ${round} (loaded after ${loadMs} ms)`);
    assertAlive(w, `restart ${round}`);
    h.wrapped || assert.ok(ms <= RESUME_MS);
  }
  await allDoneOnce(r, qn, w, ids);
  assert.ok(w.logs.some(l => /LOADING/.test(l.error || '')), 'the worker met LOADING replies');
  await stopClean(w, t);
  await srv.shutdown();
});

test('CLIENT KILL TYPE pubsub and TYPE normal: the worker reconnects and keeps going', async t => {
  const srv = await h.startRedis({ args: ['--enable-debug-command', 'local'] });
  const r = h.redis(srv.url);
  const qn = h.qname('kill');
  const w = await h.startWorker({ queue: qn, concurrency: 4, redisUrl: srv.url, args: RECOVERY });
  const q = h.queue(qn, {}, srv.url);
  const ids = await addSleeps(q, 300, 15);
  const channel = h.key(qn, 'delayed');
  await h.waitFor(() => srv.cli('PUBSUB', 'NUMSUB', channel).endsWith('1'), { message: 'worker subscribed' });

  for (const [type, round] of [['pubsub', 1], ['normal', 1], ['pubsub', 2], ['normal', 2]]) {
    await h.waitFor(() => w.events('job.completed').length >= 10, { timeout: 30000, message: 'jobs running' });
    srv.cli('CLIENT', 'KILL', 'TYPE', type);
    await h.sleep(50);
    assertAlive(w, `CLIENT KILL TYPE ${type} #${round}`);
    await resumes(w, `CLIENT KILL TYPE ${type} #${round}`);
    if (type === 'pubsub') {
      // The subscription (delayed-job channel) is restored after the kill.
      await h.waitFor(() => srv.cli('PUBSUB', 'NUMSUB', channel).endsWith('1'), {
        timeout: RESUME_MS, message: 'the worker to subscribe again',
      });
    }
  }
  // A delayed job is promoted after all that (the subscriber wakes the timer).
  const delayed = await q.add('noop', {}, { delay: 300 });
  ids.push(String(delayed.id));
  await allDoneOnce(r, qn, w, ids);
  const reconnects = w.events('redis.connected').length;
  assert.ok(reconnects >= 2 + 1 + 4, `connections re-made (${reconnects} connects logged)`);
  await stopClean(w, t);
  await srv.shutdown();
});

test('DEBUG SLEEP longer than the lock renewal period: locks may lapse, nothing is lost or stuck', async t => {
  const srv = await h.startRedis({ args: ['--enable-debug-command', 'local'] });
  const r = h.redis(srv.url);
  const qn = h.qname('sleep');
  const w = await h.startWorker({
    queue: qn, concurrency: 4, redisUrl: srv.url,
    args: ['--lock-duration', '2000', '--lock-renew-time', '1000', '--stalled-interval', '1000'],
  });
  const q = h.queue(qn, {}, srv.url);
  const ids = await addSleeps(q, 60, 300);
  await h.waitFor(() => w.events('job.completed').length >= 4, { timeout: 30000, message: 'jobs running' });
  // redis-cli blocks for the whole sleep: Redis answers nobody meanwhile.
  srv.cli('DEBUG', 'SLEEP', '3');
  assertAlive(w, 'DEBUG SLEEP 3');
  await resumes(w, 'DEBUG SLEEP 3');
  assertAlive(w, 'DEBUG SLEEP 3');
  // Jobs whose lock lapsed are never finished by us (lock_extension_failed)
  // and come back through the stalled check; each still completes once.
  const c = await h.counts(r, qn);
  await h.waitFor(async () => (await r.zcard(h.key(qn, 'completed'))) === ids.length, {
    timeout: SETTLE_MS, interval: 100,
    message: async () => `all jobs completed; counts=${JSON.stringify(await h.counts(r, qn))} (after sleep ${JSON.stringify(c)})`,
  });
  const final = await h.counts(r, qn);
  assert.equal(final.active, 0);
  assert.equal(final.failed, 0, JSON.stringify(final));
  await stopClean(w, t);
  await srv.shutdown();
});
