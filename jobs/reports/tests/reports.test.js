'use strict';
// The reports family from a Node backend's side: Node bull 4.16.5 adds
// report jobs, the real erpq-worker (--queue reports@reports) runs them
// against MariaDB (a database of this test's own, seed-demo data) and the
// test s3rver, and job.finished() resolves with our result; the file is
// downloaded through the result's presigned URL with Node's fetch, its
// SHA-256 checked, and its rows counted against the SQL. Bad input
// rejects job.finished() at once; notify puts a send-email job on `email`.
//
// Needs ERPQ_TEST_MYSQL_URL, ERPQ_TEST_REDIS_URL and ERPQ_TEST_S3_* (fails,
// never skips, without them). Registered from jobs/reports/CMakeLists.txt.
const { test, before, after } = require('node:test');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const path = require('node:path');

const h = require(path.join(process.env.ERPQ_SOURCE_DIR || path.join(__dirname, '../../..'),
  'tests/interop/lib/harness'));

const { assert } = h;
let db; let my; let prefix; let worker; let q;

function mariadb(args) {
  return execFileSync('mariadb', ['--no-defaults', '-h', my.hostname, '-P', my.port || '3306',
    '-u', decodeURIComponent(my.username), `-p${decodeURIComponent(my.password)}`, ...args],
  { encoding: 'utf8' }).trim();
}
const sql = query => mariadb(['-N', '-B', db, '-e', query]);

before(async () => {
  const e = h.env();
  for (const v of ['ERPQ_TEST_MYSQL_URL', 'ERPQ_TEST_S3_URL', 'ERPQ_TEST_S3_BUCKET',
    'ERPQ_TEST_S3_ACCESS_KEY', 'ERPQ_TEST_S3_SECRET_KEY']) {
    if (!process.env[v]) throw new Error(`${v} is not set (test servers of scripts/test)`);
  }
  my = new URL(process.env.ERPQ_TEST_MYSQL_URL);
  db = `erp_ri${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  prefix = `ri${process.pid}`;
  mariadb(['-e', `CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`]);
  const url = `mysql://${my.username}:${my.password}@${my.hostname}:${my.port || 3306}/${db}`;
  const env = { ...process.env, ERPQ_MYSQL_URL: url };
  execFileSync(e.worker, ['migrate'], { env });
  execFileSync(e.worker, ['seed-demo', '--students', '90'], { env });
  // Inherited by the worker: the database and the report store.
  Object.assign(process.env, {
    ERPQ_MYSQL_URL: url,
    ERPQ_S3_BUCKET: process.env.ERPQ_TEST_S3_BUCKET,
    ERPQ_S3_ENDPOINT: process.env.ERPQ_TEST_S3_URL,
    ERPQ_S3_REGION: process.env.ERPQ_TEST_S3_REGION || 'us-east-1',
    ERPQ_S3_ACCESS_KEY_ID: process.env.ERPQ_TEST_S3_ACCESS_KEY,
    ERPQ_S3_SECRET_ACCESS_KEY: process.env.ERPQ_TEST_S3_SECRET_KEY,
    ERPQ_REPORT_KEY_PREFIX: `reports-${prefix}`,
  });
  delete process.env.ERPQ_STORAGE_DIR;
  // --queue reports:2@reports: the queue bound to the family by name.
  worker = await h.startWorker({ queue: 'reports', concurrency: '2@reports', diag: false,
    args: ['--prefix', prefix] });
  q = h.queue('reports', { prefix });
});

after(async () => {
  await h.cleanup();
  if (db) mariadb(['-e', `DROP DATABASE \`${db}\``]);
});

async function download(result) {
  const res = await fetch(result.url);
  assert.equal(res.status, 200);
  const buf = Buffer.from(await res.arrayBuffer());
  assert.equal(crypto.createHash('sha256').update(buf).digest('hex'), result.sha256);
  assert.equal(buf.length, result.bytes);
  assert.match(res.headers.get('content-disposition') || '', /fee-collection-DEMO-001/);
  return buf;
}

const APRIL_UTC = "p.paid_at >= '2026-03-31 18:30:00' AND p.paid_at < '2026-04-30 18:30:00'";

test('fee-collection added by Node bull: job.finished() resolves with our result', async () => {
  assert.ok(worker.running);
  const progress = [];
  await h.onGlobal(q, 'global:progress', (id, p) => progress.push([String(id), Number(p)]));
  const job = await q.add('fee-collection',
    { schoolId: 1, from: '2026-04-01', to: '2026-04-30', format: 'csv' });
  const result = await job.finished();
  const [count, total] = sql('SELECT COUNT(*), SUM(p.amount_minor) FROM payments p JOIN students s'
    + ` ON s.id = p.student_id WHERE s.school_id = 1 AND ${APRIL_UTC}`).split('\t').map(Number);
  assert.equal(result.format, 'csv');
  assert.equal(result.rows, count);
  assert.equal(result.totals.amountMinor, total);
  assert.equal(result.totals.currency, 'INR');
  assert.equal(result.storage, 's3');
  assert.equal(result.key, `reports-${prefix}/1/2026-04/${job.id}-fee-collection.csv`);
  assert.equal(result.contentType, 'text/csv; charset=utf-8');
  const csv = (await download(result)).toString('utf8');
  assert.ok(csv.startsWith('\ufeffPaid at,'), 'a BOM, then the header');
  const lines = csv.split('\r\n');
  assert.equal(lines.indexOf(''), count + 1, 'the data rows, then an empty line');
  assert.match(lines.at(-2), /^Grand total,+\d+\.\d\d$/);
  await h.waitFor(() => progress.some(([id, p]) => id === String(job.id) && p === 100),
    { message: 'progress 100' });
  const done = await q.getJob(job.id);
  assert.equal(done.progress(), 100);
});

test('xlsx and pdf through bull, the statement too', async () => {
  const student = Number(sql('SELECT MIN(student_id) FROM payments'));
  const jobs = await q.addBulk([
    { name: 'fee-collection', data: { schoolId: 1, from: '2026-04-01', to: '2026-04-30', format: 'xlsx' } },
    { name: 'defaulters', data: { schoolId: 1, asOf: '2026-04-30', format: 'pdf' } },
    { name: 'fee-statement', data: { schoolId: 1, studentId: student, from: '2026-04-01', to: '2026-04-30', format: 'pdf' } },
  ]);
  const [x, d, s] = await Promise.all(jobs.map(j => j.finished()));
  assert.equal(x.contentType, 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
  const xb = await download(x);
  assert.equal(xb.subarray(0, 2).toString(), 'PK', 'a zip container');
  assert.equal(d.rows, Number(sql("SELECT COUNT(DISTINCT student_id) FROM fees WHERE school_id = 1"
    + " AND due_date <= '2026-04-30' AND status IN ('pending', 'partially_paid')"
    + ' AND amount_minor > paid_minor')));
  const res = await fetch(s.url);
  assert.equal(res.status, 200);
  assert.equal(Buffer.from(await res.arrayBuffer()).subarray(0, 5).toString(), '%PDF-');
  assert.equal(s.totals.closingBalanceMinor,
    s.totals.openingBalanceMinor + s.totals.debitMinor - s.totals.creditMinor);
});

test('bad input rejects job.finished() at once, without retries', async () => {
  const job = await q.add('fee-collection',
    { schoolId: 424242, from: '2026-04-01', to: '2026-04-30', format: 'csv' },
    { attempts: 4, backoff: 10 });
  await assert.rejects(job.finished(), /unknown school 424242/);
  assert.equal((await q.getJob(job.id)).attemptsMade, 1);
  const bad = await q.add('defaulters', { schoolId: 1, asOf: '2026-04-30', format: 'docx' });
  await assert.rejects(bad.finished(), /format/);
});

test('notify: a send-email job on queue email, added once', async () => {
  const job = await q.add('fee-collection', {
    schoolId: 1, from: '2026-04-01', to: '2026-04-30', format: 'csv',
    notify: { email: 'bursar@school.example', locale: 'hi' },
  });
  const result = await job.finished();
  const email = h.queue('email', { prefix });
  const mail = await email.getJob(`report-ready:reports:${job.id}`);
  assert.ok(mail, 'the e-mail job exists');
  assert.equal(mail.name, 'send-email');
  assert.equal(mail.data.template, 'report-ready');
  assert.equal(mail.data.to, 'bursar@school.example');
  assert.equal(mail.data.locale, 'hi');
  assert.equal(mail.data.vars.recipientName, 'bursar');
  assert.equal(mail.data.vars.rows, result.rows);
  assert.equal(mail.data.vars.format, 'CSV');
  const res = await fetch(mail.data.vars.downloadUrl);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  assert.equal(await email.count(), 1);
});
