'use strict';
// Provider limits shared by the fleet, end to end: two erpq-worker
// processes sending SMS together never exceed the provider's rate (as the
// stand-in sees arrivals, in any one-second window); the circuit breaker
// opens after repeated failures, delays jobs instead of failing them
// (every failed attempt is a failure the provider answered), sends
// nothing while open, and closes after a successful probe; and bull's
// limiter with groupKey schoolId caps one school without holding up
// another (the per-school cap: --limiter Q:MAX:MS:schoolId).
//
// Needs ERPQ_TEST_REDIS_URL and ERPQ_TEST_MYSQL_URL.
const { test, before, after } = require('node:test');
const n = require('./lib/notify_env');

const { h } = n;
const { assert } = h;
let db; let sms;

const vars = { schoolName: 'Sunrise', studentName: 'Aarav', outstanding: 'Rs 100.00', oldestDueDate: '2026-04-10',
  payUrl: null };

before(async () => {
  h.env();
  db = n.makeDb(2, { schools: 2 });
  sms = await n.startSms();
});

after(async () => {
  await h.cleanup();
  if (sms) await sms.stop();
  if (db) db.drop();
});

const env = (prefix, extra) => n.workerEnv(db, prefix, { ...sms.env, ERPQ_SMTP_URL: '', ...extra });

function worstWindow(times, ms) {
  const t = [...times].sort((a, b) => a - b);
  let worst = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= ms) j++;
    worst = Math.max(worst, i - j + 1);
  }
  return worst;
}

test('two workers together never exceed the provider rate', async () => {
  const prefix = `nl${process.pid}a`;
  await sms.clear();
  const e = env(prefix, { ERPQ_SMS_RATE: '10' });
  const w1 = await n.startNotifyWorker({ queues: ['sms:20'], env: e });
  const w2 = await n.startNotifyWorker({ queues: ['sms:20'], env: e });
  const q = h.queue('sms', { prefix });
  const jobs = await q.addBulk(Array.from({ length: 60 }, (_, i) => ({ name: 'send-sms',
    data: { schoolId: 1, to: `+9198001${String(10000 + i).padStart(5, '0')}`, template: 'fee-reminder', vars } })));
  await Promise.all(jobs.map(j => j.finished()));
  const times = (await sms.requests()).map(r => r.t * 1000);
  assert.equal(times.length, 60);
  assert.ok(worstWindow(times, 1000) <= 10, `${worstWindow(times, 1000)} arrivals within one second`);
  assert.equal(worstWindow(times, 1000), 10, 'the rate is used, not only respected');
  const span = Math.max(...times) - Math.min(...times);
  assert.ok(span >= 5000, `60 at 10/s took ${span} ms`);
  const c1 = w1.events('job.completed').length; const c2 = w2.events('job.completed').length;
  assert.equal(c1 + c2, 60);
  assert.ok(c1 > 0 && c2 > 0, `both workers sent (${c1}, ${c2})`);
  await Promise.all([w1.stop(), w2.stop()]);
});

test('circuit breaker: opens after repeated failures, delays instead of failing, probes, closes', async () => {
  const prefix = `nl${process.pid}b`;
  await sms.clear();
  await sms.next('500', 10000);
  const w = await n.startNotifyWorker({ queues: ['sms:20'], env: env(prefix, {
    ERPQ_BREAKER_THRESHOLD: '3', ERPQ_BREAKER_OPEN_MS: '1500', ERPQ_BREAKER_PROBE_MS: '3000' }) });
  const q = h.queue('sms', { prefix });
  const jobs = await q.addBulk(Array.from({ length: 8 }, (_, i) => ({ name: 'send-sms',
    data: { schoolId: 1, to: `+9198001${String(20000 + i).padStart(5, '0')}`, template: 'fee-reminder', vars },
    opts: { attempts: 20, backoff: { type: 'fixed', delay: 100 } } })));
  const opened = await w.waitLog('notify.breaker_opened', {}, 10000);
  const openedAt = Date.parse(opened.ts);
  // While open, nothing reaches the provider.
  await h.sleep(600);
  await fetch(`${sms.url}/__next`, { method: 'DELETE' }); // the provider recovers
  const closed = await w.waitLog('notify.breaker_closed', {}, 15000);
  await Promise.all(jobs.map(j => j.finished()));
  const reqs = await sms.requests();
  const during = reqs.filter(r => r.t * 1000 > openedAt + 200 && r.t * 1000 < openedAt + 1400);
  assert.equal(during.length, 0, `${during.length} requests while the circuit was open`);
  const failures = reqs.filter(r => r.status === '500').length;
  assert.ok(failures >= 3, `${failures} failures`);
  let attempts = 0;
  let delayedLogs = 0;
  for (const j of jobs) {
    const jj = await q.getJob(j.id);
    attempts += jj.attemptsMade;
    const { logs } = await q.getJobLogs(j.id);
    delayedLogs += logs.filter(l => /circuit breaker is open/.test(l)).length;
  }
  assert.equal(attempts, failures, 'only answered failures used attempts; breaker delays used none');
  assert.ok(delayedLogs > 0, 'jobs were delayed by the open circuit');
  assert.ok(Date.parse(closed.ts) - openedAt >= 1400, 'closed only after the open period');
  assert.equal(w.events('job.failed').length, 0);
  await w.stop();
});

test('per-school caps: bull limiter with groupKey schoolId holds one school, not the other', async () => {
  const prefix = `nl${process.pid}c`;
  await sms.clear();
  const w = await n.startNotifyWorker({ queues: ['sms:20'], env: env(prefix, {}),
    args: ['--limiter', 'sms:3:1000:schoolId'] });
  // Ids as fee-reminders makes them (and as bull's Queue.add does with a
  // groupKey limiter): the school is the last segment.
  const q = h.queue('sms', { prefix });
  const mk = (school, i) => ({ name: 'send-sms', opts: { jobId: `cap:${i}:${school}` },
    data: { schoolId: school, to: `+9198${String(school).padStart(3, '0')}${String(30000 + i).padStart(5, '0')}`,
      template: 'fee-reminder', vars } });
  const jobs = await q.addBulk([...Array.from({ length: 9 }, (_, i) => mk(1, i)), ...Array.from({ length: 3 }, (_, i) => mk(2, i))]);
  await Promise.all(jobs.map(j => j.finished()));
  const reqs = await sms.requests();
  const t1 = reqs.filter(r => r.form.To.startsWith('+9198001')).map(r => r.t * 1000);
  const t2 = reqs.filter(r => r.form.To.startsWith('+9198002')).map(r => r.t * 1000);
  assert.equal(t1.length, 9);
  assert.equal(t2.length, 3);
  const start = Math.min(...t1, ...t2);
  assert.ok(Math.max(...t1) - start >= 1900, 'school 1 takes three windows of three');
  assert.ok(Math.max(...t2) - start < 900, 'school 2 is not held up behind school 1');
  await w.stop();
});
