'use strict';
// Helpers for the notifications family's end-to-end tests (node:test, the
// real erpq-worker, Node bull 4.16.5 as the producer, real peers):
//
// * need(name):          a required environment variable (throws: the test
//                        FAILS, never skips, without its server).
// * makeDb(students):    a database erp_n<random> of its own, migrated and
//                        seeded with demo school DEMO-001 (erpq-worker
//                        migrate / seed-demo); { url, sql(q), drop() }.
// * startSms():          tests/sms_gateway.py, the recording Twilio stand-in;
//                        { url, requests(), clear(), next(mode, count, retryAfter), stop() }.
// * startSink(args):     postfix smtp-sink via tests/smtp_peers.py (error
//                        injection); { url, stop() }.
// * maildev:             the suite's maildev (ERPQ_TEST_MAILDEV_API): list(),
//                        clear(), source(id), attachment(id, name).
// * workerEnv(extra):    the worker's settings for a test (prefix, database,
//                        SMTP, SMS, sender, unsubscribe links).
// * startNotifyWorker({queues, env, args}): erpq-worker serving the family.
// * sha256(s), messageId(key): what the family derives from a dedup key.
// * contactsIn(db, text): demo parent contacts found in text, in every
//                        spelling a log could carry (for privacy checks).
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('../../../../tests/interop/lib/harness');

const SRC = process.env.ERPQ_SOURCE_DIR || path.resolve(__dirname, '../../../..');
const TESTS = path.join(SRC, 'jobs/notifications/tests');
const FROM = 'Sunrise School <office@school.example>';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (throwaway server started by scripts/test)`);
  return v;
}

function mysqlArgs(u) {
  return ['--no-defaults', '-h', u.hostname, '-P', u.port || '3306', '-u', decodeURIComponent(u.username),
    `-p${decodeURIComponent(u.password)}`];
}

function makeDb(students = 40, { schools = 1 } = {}) {
  const e = h.env();
  const base = new URL(need('ERPQ_TEST_MYSQL_URL'));
  const name = `erp_n${process.pid}_${crypto.randomBytes(3).toString('hex')}`;
  execFileSync('mariadb', [...mysqlArgs(base), '-e',
    `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`]);
  const url = `mysql://${base.username}:${base.password}@${base.hostname}:${base.port || 3306}/${name}`;
  const env = { ...process.env, ERPQ_MYSQL_URL: url };
  execFileSync(e.worker, ['migrate'], { env, stdio: 'ignore' });
  if (students) execFileSync(e.worker, ['seed-demo', '--students', String(students), '--schools', String(schools)], { env, stdio: 'ignore' });
  const sql = q => execFileSync('mariadb', [...mysqlArgs(base), '-N', '-B', name, '-e', q], { encoding: 'utf8' }).trim();
  return {
    name, url, sql,
    rows: q => { const t = sql(q); return t ? t.split('\n').map(l => l.split('\t')) : []; },
    drop: () => execFileSync('mariadb', [...mysqlArgs(base), '-e', `DROP DATABASE IF EXISTS \`${name}\``]),
  };
}

/** A child that prints "READY port=N ..." and stops when its stdin closes. */
function startPeer(cmd, args, label) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    const lines = [];
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${label}: not ready; ${err}`)); }, 60000);
    child.stderr.on('data', d => { err += d; });
    child.stdout.on('data', d => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.startsWith('READY ')) {
          clearTimeout(timer);
          const port = Number(/port=(\d+)/.exec(line)[1]);
          resolve({ child, port, lines, stderr: () => err,
            stop: () => new Promise(r => { child.once('exit', r); child.stdin.end(); setTimeout(() => child.kill('SIGKILL'), 10000).unref(); }) });
        }
      }
    });
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${label} exited ${code}: ${err}`)); });
  });
}

async function startSms({ sid = 'AC0123456789', token = 'sms-test-token' } = {}) {
  const p = await startPeer('/usr/bin/python3', [path.join(TESTS, 'sms_gateway.py'), '--sid', sid, '--token', token], 'sms_gateway');
  const url = `http://127.0.0.1:${p.port}`;
  const call = async (method, route, body) => {
    const r = await fetch(url + route, { method, body: body && JSON.stringify(body) });
    return r.json();
  };
  return {
    ...p, url, sid, token,
    requests: () => call('GET', '/__requests'),
    clear: () => call('DELETE', '/__requests'),
    next: (mode, count = 1, retryAfter) => call('POST', '/__next', { mode, count, retry_after: retryAfter }),
    env: { ERPQ_SMS_URL: url, ERPQ_SMS_ACCOUNT_SID: sid, ERPQ_SMS_AUTH_TOKEN: token, ERPQ_SMS_FROM: '+15550001111' },
  };
}

async function startSink(args = []) {
  const cache = path.join(process.env.ERPQ_BIN_DIR, '..', 'test-cache');
  const p = await startPeer('/usr/bin/python3', [path.join(TESTS, 'smtp_peers.py'), 'sink', '--cache', cache, ...args], 'smtp-sink');
  return { ...p, url: `smtp://127.0.0.1:${p.port}` };
}

const maildev = {
  api: () => need('ERPQ_TEST_MAILDEV_API'),
  async list() { return (await fetch(`${this.api()}/email`)).json(); },
  async clear() { await fetch(`${this.api()}/email/all`, { method: 'DELETE' }); },
  async source(id) { return (await fetch(`${this.api()}/email/${id}/source`)).text(); },
  async attachment(id, name) {
    return Buffer.from(await (await fetch(`${this.api()}/email/${id}/attachment/${encodeURIComponent(name)}`)).arrayBuffer());
  },
};

function workerEnv(db, prefix, extra = {}) {
  return {
    ERPQ_MYSQL_URL: db.url,
    ERPQ_PREFIX: prefix,
    ERPQ_SMTP_URL: need('ERPQ_TEST_SMTP_URL'),
    ERPQ_MAIL_FROM: FROM,
    ERPQ_UNSUBSCRIBE_URL: 'https://erp.example.test/unsubscribe',
    ERPQ_UNSUBSCRIBE_SECRET: 'a-test-unsubscribe-secret-of-enough-bytes',
    ERPQ_NOTIFY_BACKOFF_MS: '200',
    ...extra,
  };
}

const SETTINGS = /^ERPQ_(SMTP|SMS|MAIL|MONGO|UNSUBSCRIBE|NOTIFY|BREAKER|OUTBOX|STORAGE|S3|MYSQL|PREFIX|PUBLIC)/;

/** erpq-worker serving queues (['email:20', ...]) with env (no other ERPQ_* leaks in). */
async function startNotifyWorker({ queues, env = {}, args = [], ready = true }) {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (SETTINGS.test(k)) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const [first, ...rest] = queues;
    const [queue, concurrency] = first.split(':');
    return await h.startWorker({ queue, concurrency: Number(concurrency || 1), diag: false, ready,
      args: [...rest.flatMap(q => ['--queue', q]), '--prefix', env.ERPQ_PREFIX, ...args] });
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

const sha256 = s => crypto.createHash('sha256').update(s).digest('hex');
const messageId = (key, domain = 'school.example') => `<${sha256(key).slice(0, 32)}@${domain}>`;

/**
 * Finds demo parent contacts in text: e-mail addresses, phone numbers as
 * stored ("+91 98001 00001"), in E.164 and as national digit runs (a run
 * of exactly those 10 digits, so a timestamp does not count). Returns the
 * contacts found.
 */
function contactsIn(db, text) {
  const found = [];
  const national = new Set();
  for (const [email, phone] of db.rows('SELECT parent_email, parent_phone FROM students')) {
    if (email && email !== 'NULL' && text.includes(email)) found.push(email);
    if (phone && phone !== 'NULL') {
      const digits = phone.replace(/[^0-9]/g, '');
      if (text.includes(phone) || text.includes(`+${digits}`)) found.push(phone);
      national.add(digits.slice(2));
    }
  }
  for (const m of text.matchAll(/(?<![0-9])[0-9]{10}(?![0-9])/g)) if (national.has(m[0])) found.push(m[0]);
  return found;
}

function tmpDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `erpq-${tag}-`));
}

module.exports = { h, need, makeDb, startSms, startSink, maildev, workerEnv, startNotifyWorker, sha256,
  messageId, contactsIn, tmpDir, SRC, TESTS, FROM };
