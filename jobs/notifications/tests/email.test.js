'use strict';
// send-email end to end: Node bull adds the jobs, the real erpq-worker
// sends them to maildev (read back over its REST API: subject, From, To,
// Cc, envelope, text, html, headers, attachments) or to postfix's
// smtp-sink with injected failures (5xx: failed for good, the record says
// why; 421: retried with bull's backoff). Also: the report family's
// report-ready data, locale fallback, missing variables, attachments from
// a finished report job and from a storage key, the dedup record (a second
// job with the same dedupKey sends nothing), and the MySQL records/outbox.
//
// Needs ERPQ_TEST_REDIS_URL, ERPQ_TEST_MYSQL_URL, ERPQ_TEST_SMTP_URL,
// ERPQ_TEST_MAILDEV_API (fails, never skips, without them).
const { test, before, after } = require('node:test');
const fs = require('node:fs');
const path = require('node:path');
const Mustache = require('mustache');
const n = require('./lib/notify_env');

const { h } = n;
const { assert } = h;
let db; let prefix; let w; let q; let storage;

const reportVars = {
  recipientName: 'Priya Sharma', reportTitle: 'Fees & dues <April>', schoolName: 'Sunrise Public School, Pune',
  downloadUrl: 'https://erp.example.test/dl/abc?sig=1&x=2', expiresAt: '2026-12-09 10:00 IST', rows: 1250, format: 'csv',
};

before(async () => {
  h.env();
  n.need('ERPQ_TEST_MAILDEV_API');
  db = n.makeDb(10);
  prefix = `ne${process.pid}`;
  storage = n.tmpDir('storage');
  fs.mkdirSync(path.join(storage, 'reports/1/2026-12'), { recursive: true });
  fs.writeFileSync(path.join(storage, 'reports/1/2026-12/r1-fees.csv'), 'student,amount\r\nAarav,1250.50\r\n');
  fs.writeFileSync(path.join(storage, 'reports/1/2026-12/r2.pdf'), Buffer.from([0x25, 0x50, 0x44, 0x46, 0, 1, 2, 255]));
  await n.maildev.clear();
  w = await n.startNotifyWorker({ queues: ['email:20'], env: n.workerEnv(db, prefix, {
    ERPQ_STORAGE_DIR: storage, ERPQ_STORAGE_SECRET: 'a-storage-link-secret-of-32-bytes-or-more' }) });
  q = h.queue('email', { prefix });
});

after(async () => {
  await h.cleanup();
  if (db) db.drop();
});

async function mailByKey(key) {
  const want = n.messageId(key);
  return h.waitFor(async () => (await n.maildev.list()).filter(m => m.messageId === want || (m.headers || {})['message-id'] === want)[0],
    { timeout: 10000, message: `a mail with Message-ID ${want}` });
}

test('report-ready: subject, addresses, envelope, bodies, headers, Message-ID from the dedup key', async () => {
  const job = await q.add('send-email', { schoolId: 1, to: ['priya.sharma@example.org', 'Accounts@Example.ORG'],
    cc: 'principal@example.org', template: 'report-ready', locale: 'en', vars: reportVars, dedupKey: 'report:42:notify' });
  const res = await job.finished();
  assert.equal(res.status, 'sent');
  assert.equal(res.to, 'p***@example.org,A***@example.org,p***@example.org');
  assert.equal(res.providerMessageId, n.messageId('report:42:notify'));
  const m = await mailByKey('report:42:notify');
  const subjectTpl = fs.readFileSync(path.join(n.SRC, 'templates/email/report-ready.en.subject.mustache'), 'utf8');
  assert.equal(m.subject, Mustache.render(subjectTpl, reportVars, {}, { escape: x => x }).trim());
  assert.deepEqual(m.from, [{ address: 'office@school.example', name: 'Sunrise School' }]);
  assert.deepEqual(m.to.map(a => a.address), ['priya.sharma@example.org', 'Accounts@example.org']);
  assert.deepEqual(m.cc.map(a => a.address), ['principal@example.org']);
  assert.deepEqual(m.envelope.to.map(a => a.address).sort(),
    ['Accounts@example.org', 'principal@example.org', 'priya.sharma@example.org']);
  assert.equal(m.envelope.from.address, 'office@school.example');
  assert.match(m.text, /Your report "Fees & dues <April>" from Sunrise Public School, Pune is ready\./);
  assert.ok(m.text.includes(reportVars.downloadUrl), 'the text carries the link as is');
  assert.ok(m.html.includes('Fees &amp; dues &lt;April&gt;'), 'the html escapes the title');
  assert.ok(m.html.includes('href="https://erp.example.test/dl/abc?sig=1&amp;x=2"'), 'and the link');
  assert.ok(m.text.includes('Rows: 1250'));
  const src = await n.maildev.source(m.id);
  assert.match(src, /^Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000\r?$/m);
  assert.match(src, /^Content-Type: multipart\/alternative;/m);
  assert.doesNotMatch(src, /^List-Unsubscribe/m, 'not a bulk mail: no unsubscribe headers');
  // The record in MySQL: masked, sent, with the Message-ID.
  const [row] = db.rows(`SELECT status, channel, recipient_masked, provider_id, attempts, template, locale
    FROM notifications WHERE dedup_hash = '${n.sha256('report:42:notify')}'`);
  assert.deepEqual(row, ['sent', 'email', 'p***@example.org,A***@example.org,p***@example.org',
    n.messageId('report:42:notify'), '1', 'report-ready', 'en']);
});

test('a second job with the same dedupKey sends nothing; the same job id again neither', async () => {
  const data = { schoolId: 1, to: 'twice@example.org', template: 'report-ready', vars: reportVars, dedupKey: 'dup-1' };
  const r1 = await (await q.add('send-email', data)).finished();
  const r2 = await (await q.add('send-email', data)).finished();
  assert.equal(r1.status, 'sent');
  assert.equal(r2.status, 'already-sent');
  assert.equal(r2.providerMessageId, r1.providerMessageId);
  // No dedupKey: the key is <queue>:<jobId>. The job removed and added
  // again (as a fan-out re-run does after removeOnComplete) sends nothing.
  const { dedupKey, ...plain } = data;
  const j1 = await q.add('send-email', plain, { jobId: 'again-1' });
  assert.equal((await j1.finished()).status, 'sent');
  await j1.remove();
  const j2 = await q.add('send-email', plain, { jobId: 'again-1' });
  const r3 = await j2.finished();
  assert.equal(r3.status, 'already-sent');
  assert.equal(r3.notificationId, n.sha256(`${prefix}:email:again-1`));
  await h.sleep(200);
  const mails = (await n.maildev.list()).filter(m => m.to.some(a => a.address === 'twice@example.org'));
  assert.equal(mails.length, 2, 'one for dup-1, one for again-1');
  assert.equal(db.sql(`SELECT COUNT(*) FROM notifications WHERE dedup_hash IN ('${n.sha256('dup-1')}', '${n.sha256(`${prefix}:email:again-1`)}') AND status = 'sent'`), '2');
});

test('jobs racing with one dedupKey: one mail; the others wait for the claim, then find it sent', async () => {
  const data = { schoolId: 1, to: 'race@example.org', template: 'report-ready', vars: reportVars, dedupKey: 'race-1' };
  const jobs = await q.addBulk([1, 2, 3, 4].map(() => ({ name: 'send-email', data })));
  const res = await Promise.all(jobs.map(j => j.finished()));
  assert.deepEqual(res.map(r => r.status).sort(), ['already-sent', 'already-sent', 'already-sent', 'sent']);
  for (const j of jobs) assert.equal((await q.getJob(j.id)).attemptsMade, 0, 'waiting used no attempt');
  const waited = await Promise.all(jobs.map(async j => (await q.getJobLogs(j.id)).logs.join('|')));
  assert.ok(waited.filter(l => /another job is sending the same message/.test(l)).length >= 1, waited.join(' / '));
  await h.sleep(200);
  assert.equal((await n.maildev.list()).filter(m => m.to.some(a => a.address === 'race@example.org')).length, 1);
});

test('locale fallback hi-IN -> hi, and every missing variable named (failed at once, no retry)', async () => {
  const r = await (await q.add('send-email', { schoolId: 1, to: 'hindi@example.org', template: 'report-ready',
    locale: 'hi-IN', vars: reportVars, dedupKey: 'hi-1' })).finished();
  assert.equal(r.status, 'sent');
  const m = await mailByKey('hi-1');
  const tpl = fs.readFileSync(path.join(n.SRC, 'templates/email/report-ready.hi.subject.mustache'), 'utf8');
  assert.equal(m.subject, Mustache.render(tpl, reportVars, {}, { escape: x => x }).trim());
  assert.equal(db.sql(`SELECT locale FROM notifications WHERE dedup_hash = '${n.sha256('hi-1')}'`), 'hi');
  const bad = await q.add('send-email', { schoolId: 1, to: 'x@example.org', template: 'report-ready',
    vars: { recipientName: 'A', rows: 3 } }, { attempts: 3, backoff: 10 });
  await assert.rejects(bad.finished(), /missing variables: reportTitle, schoolName, format, downloadUrl, expiresAt|5 missing variables/);
  const j = await q.getJob(bad.id);
  assert.equal(j.attemptsMade, 1, 'discarded: no retry');
  assert.match(j.failedReason, /reportTitle/);
  assert.match(j.failedReason, /expiresAt/);
  const badAddr = await q.add('send-email', { schoolId: 1, to: ['ok@example.org', 'not an address'], template: 'report-ready',
    vars: reportVars }, { attempts: 3 });
  await assert.rejects(badAddr.finished(), /data\.to\[1\] is not a usable e-mail address/);
  assert.doesNotMatch((await q.getJob(badAddr.id)).failedReason, /ok@example/);
});

test('attachments: a finished report job of the school and a storage key; foreign ones refused', async () => {
  const reports = h.queue('reports', { prefix });
  reports.process('fee-statement', async () => ({ key: 'reports/1/2026-12/r1-fees.csv', fileName: 'Fee collection April.csv',
    contentType: 'text/csv', rows: 1 }));
  const rep = await reports.add('fee-statement', { schoolId: 1, period: '2026-04' });
  await rep.finished();
  const r = await (await q.add('send-email', { schoolId: 1, to: 'acct@example.org', template: 'report-ready',
    vars: reportVars, dedupKey: 'att-1',
    attachments: [{ reportJobId: rep.id }, { key: 'reports/1/2026-12/r2.pdf', filename: 'रिपोर्ट.pdf' }] })).finished();
  assert.equal(r.status, 'sent');
  const m = await mailByKey('att-1');
  assert.equal(m.attachments.length, 2);
  const [a, b] = m.attachments;
  assert.equal(a.fileName || a.filename, 'Fee collection April.csv');
  assert.equal(a.contentType, 'text/csv');
  assert.deepEqual(await n.maildev.attachment(m.id, a.generatedFileName),
    fs.readFileSync(path.join(storage, 'reports/1/2026-12/r1-fees.csv')));
  assert.equal(b.fileName || b.filename, 'रिपोर्ट.pdf');
  assert.equal(b.contentType, 'application/pdf');
  assert.deepEqual(await n.maildev.attachment(m.id, b.generatedFileName),
    fs.readFileSync(path.join(storage, 'reports/1/2026-12/r2.pdf')));
  assert.match(await n.maildev.source(m.id), /^Content-Type: multipart\/mixed;/m);
  // Another school's report job, and a key outside the school's folder.
  const other = await reports.add('fee-statement', { schoolId: 2, period: '2026-04' });
  await other.finished();
  for (const att of [{ reportJobId: other.id }, { key: 'reports/2/2026-12/r1-fees.csv' }, { key: 'reports/1/nope.csv' }]) {
    const j = await q.add('send-email', { schoolId: 1, to: 'acct@example.org', template: 'report-ready',
      vars: reportVars, attachments: [att] }, { attempts: 3 });
    await assert.rejects(j.finished(), /another school|must lie under reports\/1\/|No such file|does not exist|cannot/i);
    assert.equal((await q.getJob(j.id)).attemptsMade, 1);
  }
});

test('SMTP 5xx for the recipient: failed for good, the record says why; 421: retried', async () => {
  const sink = await n.startSink(['-f', 'RCPT']);
  const p2 = `${prefix}s`;
  const w2 = await n.startNotifyWorker({ queues: ['email:4'], env: n.workerEnv(db, p2, {
    ERPQ_SMTP_URL: sink.url, ERPQ_BREAKER_THRESHOLD: '1000' }) });
  const q2 = h.queue('email', { prefix: p2 });
  const j = await q2.add('send-email', { schoolId: 1, to: 'rejected@example.org', template: 'report-ready',
    vars: reportVars, dedupKey: 'perm-1' }, { attempts: 3, backoff: 10 });
  await assert.rejects(j.finished(), /refused the message for good: SMTP RCPT 5\d\d/);
  const jj = await q2.getJob(j.id);
  assert.equal(jj.attemptsMade, 1);
  assert.doesNotMatch(jj.failedReason, /rejected@/);
  const [row] = db.rows(`SELECT status, last_error, attempts FROM notifications WHERE dedup_hash = '${n.sha256('perm-1')}'`);
  assert.equal(row[0], 'failed');
  assert.match(row[1], /^SMTP RCPT 5\d\d/);
  assert.equal(row[2], '1');
  assert.equal(db.sql(`SELECT COUNT(*) FROM outbox WHERE aggregate_id = '${n.sha256('perm-1')}' AND event_type IN
    ('notification.record', 'notification.failed')`), '2');
  await w2.stop();
  await sink.stop();
  // 421 at DATA: temporary, bull retries with its backoff until attempts run out.
  const sink2 = await n.startSink(['-Q', 'DATA']);
  const w3 = await n.startNotifyWorker({ queues: ['email:4'], env: n.workerEnv(db, p2, {
    ERPQ_SMTP_URL: sink2.url, ERPQ_BREAKER_THRESHOLD: '1000' }) });
  const t = await q2.add('send-email', { schoolId: 1, to: 'later@example.org', template: 'report-ready',
    vars: reportVars, dedupKey: 'temp-1' }, { attempts: 3, backoff: 50 });
  await assert.rejects(t.finished(), /to be retried: SMTP DATA 421/);
  const tj = await q2.getJob(t.id);
  assert.equal(tj.attemptsMade, 3, 'three attempts');
  const [r2] = db.rows(`SELECT status, attempts FROM notifications WHERE dedup_hash = '${n.sha256('temp-1')}'`);
  assert.deepEqual(r2, ['failed', '3'], 'the last attempt wrote the final record');
  assert.equal(db.sql(`SELECT COUNT(*) FROM outbox WHERE aggregate_id = '${n.sha256('temp-1')}' AND event_type = 'notification.retry'`), '2');
  await w3.stop();
  await sink2.stop();
});

test('a job timeout aborts its transfer; a shutdown hands sends in flight back', async () => {
  const sink = await n.startSink(['-w', '30']); // answers DATA after 30 s
  const p3 = `${prefix}t`;
  const w4 = await n.startNotifyWorker({ queues: ['email:4'], env: n.workerEnv(db, p3, { ERPQ_SMTP_URL: sink.url }),
    args: ['--grace', '1'] });
  const q3 = h.queue('email', { prefix: p3 });
  const t0 = Date.now();
  const j = await q3.add('send-email', { schoolId: 1, to: 'slow@example.org', template: 'report-ready', vars: reportVars,
    dedupKey: 'slow-1' }, { timeout: 700 });
  await assert.rejects(j.finished(), /Promise timed out after 700 milliseconds/);
  assert.ok(Date.now() - t0 < 5000, 'the slow server did not hold the job');
  // The row stays claimed by the job (a retry would be the same owner).
  assert.equal(db.sql(`SELECT status FROM notifications WHERE dedup_hash = '${n.sha256('slow-1')}'`), 'pending');
  const k = await q3.add('send-email', { schoolId: 1, to: 'slow2@example.org', template: 'report-ready', vars: reportVars });
  await w4.waitLog('job.active', { jobId: String(k.id) });
  await h.sleep(300);
  const st = await w4.stop(10000);
  assert.equal(st.code, 0, JSON.stringify(st));
  assert.ok(st.ms < 5000, `stopped in ${st.ms} ms with a send in flight`);
  assert.ok(w4.events('job.handed_back').some(l => l.jobId === String(k.id)), w4.tail());
  assert.deepEqual(w4.events('notify.quiesced').map(l => l.held), [0], 'quiesce ended every job it held');
  const kk = await q3.getJob(k.id);
  assert.equal(await kk.getState(), 'waiting');
  assert.equal(kk.attemptsMade, 0);
  await sink.stop();
});

test('no address in the worker log', () => {
  const text = w.logs.map(l => JSON.stringify(l)).join('\n') + w.raw.join('\n') + w.stderr.join('\n');
  for (const a of ['priya.sharma@', 'Accounts@', 'principal@', 'twice@', 'hindi@', 'acct@', 'rejected@', 'later@'])
    assert.ok(!text.includes(a), `the log holds ${a}`);
  assert.ok(w.events('job.completed').length >= 5);
});
