'use strict';
// send-sms end to end against the recording Twilio stand-in
// (tests/sms_gateway.py): what the gateway received (Basic auth, To in
// E.164 from "+91 98001 00001"-style input, From, Body), the encoding and
// segment count we record against Twilio's own sms-segments-calculator
// (npm) run on the body that arrived, typographic quotes kept in GSM-7,
// and the failure paths: 429 with Retry-After -> delayed without using an
// attempt; 500 -> failed and retried by bull; 400 -> failed for good with
// a record saying why (and the number redacted); bad numbers and runaway
// lengths refused before any request.
//
// Needs ERPQ_TEST_REDIS_URL and ERPQ_TEST_MYSQL_URL.
const { test, before, after } = require('node:test');
const { SegmentedMessage } = require('sms-segments-calculator');
const n = require('./lib/notify_env');

const { h } = n;
const { assert } = h;
let db; let prefix; let w; let q; let sms;

const vars = { schoolName: 'Sunrise Public School', studentName: 'Aarav Sharma', outstanding: 'Rs 2,200.50',
  oldestDueDate: '2026-04-10', payUrl: null };

before(async () => {
  h.env();
  db = n.makeDb(5);
  prefix = `ns${process.pid}`;
  sms = await n.startSms();
  w = await n.startNotifyWorker({ queues: ['sms:20'], env: n.workerEnv(db, prefix, { ...sms.env, ERPQ_SMTP_URL: '' }) });
  q = h.queue('sms', { prefix });
});

after(async () => {
  await h.cleanup();
  if (sms) await sms.stop();
  if (db) db.drop();
});

async function requestsTo(to) {
  return (await sms.requests()).filter(r => r.form.To === to);
}

test('GSM-7 and UCS-2 texts: what arrives, and segments as Twilio counts them', async () => {
  const cases = [
    { to: '+91 98001 00011', e164: '+919800100011', vars, enc: 'GSM-7', segs: 1 },
    // A curly apostrophe must not turn the SMS into UCS-2.
    { to: '+91-98001-00012', e164: '+919800100012', vars: { ...vars, studentName: 'Riya D’Souza' }, enc: 'GSM-7', segs: 1,
      has: "Riya D'Souza" },
    { to: '0091 98001 00013', e164: '+919800100013', vars: { ...vars, payUrl: `https://pay.example.test/${'x'.repeat(80)}` },
      enc: 'GSM-7', segs: 2 },
    { to: '098001 00014', e164: '+919800100014', vars: { ...vars, studentName: 'आरव शर्मा' }, locale: 'hi', enc: 'UCS-2', segs: 2 },
    // A name outside GSM-7 is not spelt wrongly to save money.
    { to: '+919800100015', e164: '+919800100015', vars: { ...vars, studentName: 'Łukasz Kowalski' }, enc: 'UCS-2', segs: 2 },
  ];
  for (const c of cases) {
    const res = await (await q.add('send-sms', { schoolId: 1, to: c.to, template: 'fee-reminder', locale: c.locale,
      vars: c.vars })).finished();
    assert.equal(res.status, 'sent');
    assert.equal(res.to, `+91********${c.e164.slice(-2)}`);
    const [r] = await requestsTo(c.e164);
    assert.ok(r, `a request for ${c.e164}`);
    assert.equal(r.auth_ok, true);
    assert.equal(r.form.From, '+15550001111');
    assert.equal(res.providerMessageId, r.sid);
    const ref = new SegmentedMessage(r.form.Body);
    assert.equal(ref.encodingName, c.enc, r.form.Body);
    assert.equal(res.encoding, ref.encodingName);
    assert.equal(res.segments, ref.segmentsCount);
    assert.equal(res.segments, c.segs);
    if (c.has) assert.ok(r.form.Body.includes(c.has), r.form.Body);
  }
  const [row] = db.rows("SELECT segments, encoding, recipient_masked FROM notifications WHERE recipient_masked = '+91********14'");
  assert.deepEqual(row, ['2', 'UCS-2', '+91********14']);
});

test('429 with Retry-After: delayed without using an attempt, then sent', async () => {
  await sms.next('429', 1, '1');
  const t0 = Date.now();
  const job = await q.add('send-sms', { schoolId: 1, to: '+919800100021', template: 'fee-reminder', vars }, { attempts: 1 });
  const res = await job.finished();
  assert.equal(res.status, 'sent');
  const reqs = await requestsTo('+919800100021');
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0].status, '429');
  assert.ok((reqs[1].t - reqs[0].t) * 1000 >= 950, `waited ${(reqs[1].t - reqs[0].t) * 1000} ms`);
  assert.ok(Date.now() - t0 >= 950);
  const j = await q.getJob(job.id);
  assert.equal(j.attemptsMade, 0, 'the 429 used no attempt (the job had only one)');
  const { logs } = await q.getJobLogs(job.id);
  assert.ok(logs.some(l => /delayed \d+ ms without using an attempt: the provider answered 429/.test(l)), logs.join('|'));
});

test('500: failed and retried by bull; 400: failed for good, the record says why', async () => {
  await sms.next('500', 1);
  const a = await q.add('send-sms', { schoolId: 1, to: '+919800100031', template: 'fee-reminder', vars, dedupKey: 's500' },
    { attempts: 3, backoff: 50 });
  const ra = await a.finished();
  assert.equal(ra.status, 'sent');
  assert.equal((await q.getJob(a.id)).attemptsMade, 1, 'one failed attempt, then success');
  assert.equal(ra.attempts, 2);
  assert.equal(db.sql(`SELECT COUNT(*) FROM outbox WHERE aggregate_id = '${n.sha256('s500')}' AND event_type = 'notification.retry'`), '1');

  await sms.next('400', 1);
  const b = await q.add('send-sms', { schoolId: 1, to: '+919800100032', template: 'fee-reminder', vars, dedupKey: 's400' },
    { attempts: 3, backoff: 50 });
  await assert.rejects(b.finished(), /refused the message for good: .*HTTP 400, code 21211/);
  const jb = await q.getJob(b.id);
  assert.equal(jb.attemptsMade, 1, 'no retry');
  assert.doesNotMatch(jb.failedReason, /9800100032/);
  assert.match(jb.failedReason, /\[number\]/);
  const [row] = db.rows(`SELECT status, last_error FROM notifications WHERE dedup_hash = '${n.sha256('s400')}'`);
  assert.equal(row[0], 'failed');
  assert.match(row[1], /HTTP 400, code 21211\): The 'To' number \[number\] is not a valid phone number/);
});

test('unusable numbers and runaway lengths are refused before any request', async () => {
  const before = (await sms.requests()).length;
  for (const [to, re] of [['12345', /not a usable phone number/], ['+91 98001 0000x', /not a usable phone number/]]) {
    const j = await q.add('send-sms', { schoolId: 1, to, template: 'fee-reminder', vars }, { attempts: 3 });
    await assert.rejects(j.finished(), re);
    assert.equal((await q.getJob(j.id)).attemptsMade, 1);
  }
  const long = await q.add('send-sms', { schoolId: 1, to: '+919800100041', template: 'fee-reminder',
    vars: { ...vars, payUrl: 'y'.repeat(2000) } }, { attempts: 3 });
  await assert.rejects(long.finished(), /takes 1[0-9] segments \(GSM-7, \d+ units\); the limit is 10/);
  assert.equal((await sms.requests()).length, before);
});

test('no phone number in the worker log', () => {
  const text = w.logs.map(l => JSON.stringify(l)).join('\n') + w.raw.join('\n') + w.stderr.join('\n');
  assert.ok(!/98001|9800100/.test(text), 'a number in the log');
  assert.ok(w.events('job.completed').length >= 7);
});
