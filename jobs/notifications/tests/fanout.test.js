'use strict';
// fee-reminders over the demo school, end to end: exactly one mail (in
// maildev) and one SMS (at the stand-in) per defaulting student's parent;
// running it again sends nothing; kill -9 of the worker in the middle of
// the fan-out, and in the middle of the sends, then a restart: still
// exactly one each. Unusable contacts and opt-outs are skipped and
// counted. The whole run's logs hold no address or number in clear.
//
// The expected recipients are computed here from the raw fee rows (not by
// the family's SQL); money texts are checked with Intl (en-IN).
//
// Needs ERPQ_TEST_REDIS_URL, ERPQ_TEST_MYSQL_URL, ERPQ_TEST_SMTP_URL,
// ERPQ_TEST_MAILDEV_API.
const { test, before, after } = require('node:test');
const crypto = require('node:crypto');
const n = require('./lib/notify_env');

const { h } = n;
const { assert } = h;
const workers = [];
let db; let big; let sms;

before(async () => {
  h.env();
  n.need('ERPQ_TEST_MAILDEV_API');
  db = n.makeDb(60);
  big = n.makeDb(600);
  sms = await n.startSms();
});

after(async () => {
  await h.cleanup();
  if (sms) await sms.stop();
  if (db) db.drop();
  if (big) big.drop();
});

/** Defaulters computed from the raw rows: fees pending or partly paid, due by asOf - 1 day. */
function defaulters(d, asOf, klass) {
  const cutoff = new Date(`${asOf}T00:00:00Z`);
  cutoff.setUTCDate(cutoff.getUTCDate() - 1);
  const lim = cutoff.toISOString().slice(0, 10);
  const per = new Map();
  for (const [sid, status, amount, paid, due] of d.rows('SELECT student_id, status, amount_minor, paid_minor, due_date FROM fees')) {
    if (!['pending', 'partially_paid'].includes(status) || Number(amount) <= Number(paid) || due > lim) continue;
    const p = per.get(sid) || { owed: 0, count: 0, oldest: due };
    p.owed += Number(amount) - Number(paid);
    p.count += 1;
    if (due < p.oldest) p.oldest = due;
    per.set(sid, p);
  }
  const out = [];
  for (const [sid, cls, email, phone, first, last] of d.rows(
    'SELECT id, class_id, parent_email, parent_phone, first_name, last_name FROM students WHERE school_id = 1')) {
    if (!per.has(sid) || (klass && cls !== String(klass))) continue;
    out.push({ sid, email: email === 'NULL' ? null : email, phone: phone === 'NULL' ? null : phone,
      name: `${first} ${last}`, ...per.get(sid) });
  }
  return out;
}

const e164 = p => `+${p.replace(/[^0-9]/g, '')}`;
const inr = minor => `Rs ${new Intl.NumberFormat('en-IN', { minimumFractionDigits: 2, maximumFractionDigits: 2 })
  .format(minor / 100)}`;

async function start(d, prefix, queues, extra = {}, args = []) {
  const w = await n.startNotifyWorker({ queues, env: n.workerEnv(d, prefix, { ...sms.env, ...extra }), args });
  workers.push(w);
  return w;
}

async function waitSends(prefix, nmail, nsms, timeout = 60000) {
  const qe = h.queue('email', { prefix }); const qs = h.queue('sms', { prefix });
  await h.waitFor(async () => {
    const [ce, cs] = await Promise.all([qe.getJobCounts(), qs.getJobCounts()]);
    return ce.completed === nmail && cs.completed === nsms && !ce.active && !cs.active;
  }, { timeout, message: async () => `sends: email ${JSON.stringify(await qe.getJobCounts())} sms ${JSON.stringify(await qs.getJobCounts())}` });
}

function countBy(list) {
  const m = new Map();
  for (const x of list) m.set(x, (m.get(x) || 0) + 1);
  return m;
}

test('one mail and one SMS per parent; again: nothing; bad contacts and opt-outs counted', async () => {
  const asOf = '2026-05-01';
  let exp = defaulters(db, asOf);
  assert.ok(exp.length >= 30, `${exp.length} defaulters in the demo school`);
  // One parent without an e-mail, one with an unusable phone, one opted out of SMS.
  db.sql(`UPDATE students SET parent_email = NULL WHERE id = ${exp[0].sid}`);
  db.sql(`UPDATE students SET parent_phone = '98001' WHERE id = ${exp[1].sid}`);
  db.sql(`INSERT INTO notification_optouts (school_id, student_id, channel) VALUES (1, ${exp[2].sid}, 'sms')`);
  exp = defaulters(db, asOf);
  const mails = exp.filter(x => x.email).map(x => x.email);
  const phones = exp.filter(x => x.phone && x.phone !== '98001' && x.sid !== exp[2].sid).map(x => e164(x.phone));
  await n.maildev.clear();
  await sms.clear();
  const prefix = `nf${process.pid}a`;
  const w = await start(db, prefix, ['notifications:1', 'email:20', 'sms:20']);
  const q = h.queue('notifications', { prefix });
  const res = await (await q.add('fee-reminders', { schoolId: 1, asOf, channels: ['email', 'sms'] })).finished();
  assert.deepEqual(res, { recipients: 2 * exp.length, enqueued: mails.length + phones.length,
    skipped: { noContact: 2, alreadyQueued: 0, optedOut: 1 }, defaulters: exp.length });
  await waitSends(prefix, mails.length, phones.length);
  const got = await n.maildev.list();
  assert.deepEqual(got.flatMap(m => m.to.map(a => a.address)).sort(), [...mails].sort(), 'one mail per parent');
  const reqs = await sms.requests();
  assert.deepEqual(reqs.map(r => r.form.To).sort(), [...phones].sort(), 'one SMS per parent');
  // One mail's content, and its one-click unsubscribe link (verified with our own HMAC here).
  const x = exp.find(e => e.email);
  const m = got.find(g => g.to[0].address === x.email);
  assert.equal(m.subject, `Fee reminder: ${inr(x.owed)} due for ${x.name}`);
  assert.ok(m.text.includes(`Oldest due date: ${x.oldest}`));
  assert.ok(m.text.includes(`Overdue instalments: ${x.count}`));
  const src = await n.maildev.source(m.id);
  const link = /List-Unsubscribe:\s*<(https:[^>]+)>/.exec(src.replace(/\r?\n\s+/g, ' '))[1];
  const u = new URL(link);
  assert.equal(`${u.origin}${u.pathname}`, 'https://erp.example.test/unsubscribe');
  const mac = crypto.createHmac('sha256', 'a-test-unsubscribe-secret-of-enough-bytes')
    .update(`v1:1:${x.sid}:email`).digest().subarray(0, 16).toString('base64url');
  assert.deepEqual(Object.fromEntries(u.searchParams), { s: '1', u: x.sid, c: 'email', t: mac });
  assert.match(src, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$/m);
  assert.ok(m.text.includes(link), 'the body carries the same link');
  // Again: everything is already queued; nothing more is sent.
  const again = await (await q.add('fee-reminders', { schoolId: 1, asOf, channels: ['email', 'sms'] })).finished();
  assert.deepEqual(again.skipped, { noContact: 2, alreadyQueued: mails.length + phones.length, optedOut: 1 });
  assert.equal(again.enqueued, 0);
  await h.sleep(1000);
  assert.equal((await n.maildev.list()).length, mails.length);
  assert.equal((await sms.requests()).length, phones.length);
  // The fan-out's audit event.
  assert.equal(db.sql("SELECT COUNT(*) FROM outbox WHERE event_type = 'notifications.fee_reminders'"), '2');
  await w.stop();
});

test('kill -9 in the middle of the fan-out, then restart: exactly one each', async () => {
  const asOf = '2026-05-01';
  const exp = defaulters(big, asOf);
  const prefix = `nf${process.pid}b`;
  await n.maildev.clear();
  await sms.clear();
  // Only the fan-out, four students a page, a short lock so that the
  // killed job is soon stalled.
  const a = await start(big, prefix, ['notifications:1'], { ERPQ_NOTIFY_PAGE_SIZE: '4' },
    ['--lock-duration', '2000', '--stalled-interval', '500']);
  const q = h.queue('notifications', { prefix });
  const job = await q.add('fee-reminders', { schoolId: 1, asOf, channels: ['email', 'sms'] });
  const r = h.redis();
  const pages = await h.waitFor(async () => {
    const p = JSON.parse((await r.hget(h.key(q.name, job.id).replace('bull:', `${prefix}:`), 'progress')) || '0');
    return p && p.pages >= 3 ? p.pages : 0;
  }, { timeout: 20000, interval: 2, message: 'three pages of the fan-out' });
  await a.kill9();
  const total = Math.ceil(exp.length / 4);
  assert.ok(pages < total, `killed after ${pages} of ${total} pages`);
  assert.equal(await r.zscore(`${prefix}:notifications:completed`, job.id), null, 'not finished when killed');
  await start(big, prefix, ['notifications:1', 'email:40', 'sms:40'], { ERPQ_NOTIFY_PAGE_SIZE: '4' },
    ['--stalled-interval', '500', '--lock-duration', '2000']);
  const res = await job.finished();
  assert.equal(res.recipients, 2 * exp.length);
  assert.ok(res.skipped.alreadyQueued > 0, 'the pages added before the kill were found');
  assert.equal(res.enqueued + res.skipped.alreadyQueued, 2 * exp.length);
  await waitSends(prefix, exp.length, exp.length, 120000);
  const byMsgId = countBy((await n.maildev.list()).map(m => m.messageId || m.headers['message-id']));
  for (const x of exp) assert.equal(byMsgId.get(n.messageId(`reminder:1:${asOf}:${x.sid}:email`)), 1, `mail for ${x.sid}`);
  assert.equal([...byMsgId.values()].reduce((s, v) => s + v, 0), exp.length);
  const byTo = countBy((await sms.requests()).map(q2 => q2.form.To));
  for (const x of exp) assert.equal(byTo.get(e164(x.phone)), 1, `SMS for ${x.sid}`);
  assert.equal((await sms.requests()).length, exp.length);
});

test('kill -9 in the middle of the sends (rate limited), then restart: exactly one each', async () => {
  const asOf = '2026-05-03';
  const klass = big.sql("SELECT id FROM classes WHERE school_id = 1 AND name = 'Class 2' AND section = 'A'");
  const exp = defaulters(big, asOf, klass);
  assert.ok(exp.length >= 15);
  const prefix = `nf${process.pid}c`;
  await n.maildev.clear();
  await sms.clear();
  const limits = { ERPQ_SMTP_RATE: '8', ERPQ_SMS_RATE: '8' };
  const c = await start(big, prefix, ['notifications:1', 'email:20', 'sms:20'], limits,
    ['--lock-duration', '2000', '--stalled-interval', '500']);
  const q = h.queue('notifications', { prefix });
  await (await q.add('fee-reminders', { schoolId: 1, asOf, classId: Number(klass), channels: ['email', 'sms'] })).finished();
  // Kill in a quiet moment between two rate-limited bursts: every message
  // the providers took is recorded (so this tests recovery, not the crash
  // window the README describes).
  const sentRows = () => Number(big.sql(`SELECT COUNT(*) FROM notifications WHERE status = 'sent' AND job_id LIKE 'reminder:1:${asOf}:%'`));
  let stable = 0; let last = -1; let killedAt = 0;
  await h.waitFor(async () => {
    const s = sentRows();
    const seen = (await n.maildev.list()).length + (await sms.requests()).length;
    stable = s === seen && s === last ? stable + 1 : 0;
    last = s;
    if (s >= 8 && s < 2 * exp.length - 8 && stable >= 3) {
      await c.kill9();
      killedAt = s;
      return true;
    }
    return false;
  }, { timeout: 30000, interval: 25, message: () => `a quiet moment (sent ${last})` });
  assert.ok(killedAt > 0 && killedAt < 2 * exp.length, `killed after ${killedAt} of ${2 * exp.length}`);
  await start(big, prefix, ['notifications:1', 'email:20', 'sms:20'], limits,
    ['--stalled-interval', '500', '--lock-duration', '2000']);
  await waitSends(prefix, exp.length, exp.length, 120000);
  const byMsgId = countBy((await n.maildev.list()).map(m => m.messageId || m.headers['message-id']));
  for (const x of exp) assert.equal(byMsgId.get(n.messageId(`reminder:1:${asOf}:${x.sid}:email`)), 1, `mail for ${x.sid}`);
  const byTo = countBy((await sms.requests()).map(r => r.form.To));
  for (const x of exp) assert.equal(byTo.get(e164(x.phone)), 1, `SMS for ${x.sid}`);
  assert.equal((await n.maildev.list()).length + (await sms.requests()).length, 2 * exp.length);
});

test('the logs of every worker of this file hold no address or number in clear', () => {
  assert.equal(workers.length, 5);
  for (const w of workers) {
    const text = w.logs.map(l => JSON.stringify(l)).join('\n') + w.raw.join('\n') + w.stderr.join('\n');
    assert.ok(text.length > 300, text);
    assert.deepEqual(n.contactsIn(db, text), []);
    assert.deepEqual(n.contactsIn(big, text), []);
  }
  // The scan itself finds what it looks for.
  const [email, phone] = big.rows('SELECT parent_email, parent_phone FROM students LIMIT 1')[0];
  const digits = phone.replace(/[^0-9]/g, '');
  assert.equal(n.contactsIn(big, `x ${email} y`).length, 1);
  assert.equal(n.contactsIn(big, `"to":"+${digits}"`).length, 1);
  assert.equal(n.contactsIn(big, `n=${digits.slice(2)},`).length, 1);
  assert.equal(n.contactsIn(big, `ts=1${digits.slice(2)}`).length, 0);
});
