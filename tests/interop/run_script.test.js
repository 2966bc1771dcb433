'use strict';
// scripts/run as a user runs it in a terminal: started in a process group
// of its own, stopped with Ctrl-C sent to that whole group (as a terminal
// does), then started again at once.
//   - the stop is orderly: the HTTP API first (a pending long-poll gets the
//     job's state, not 503), then the worker, then the servers it started;
//   - nothing it started is left running, no port stays in LISTEN;
//   - a second start right after the stop works (sockets in TIME_WAIT do
//     not count as "taken").
// scripts/run gets its own run directory and free ports, and does not build
// (ERPQ_RUN_NO_BUILD=1, ERPQ_RUN_BIN = the binaries under test).
const { test, after } = require('node:test');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');
const { assert } = h;

const e = h.env();
const ROOT = path.resolve(__dirname, '..', '..');
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'erpq-run-'));
let child = null;
after(async () => {
  if (child && child.exitCode === null) {
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
  }
  await h.cleanup();
});

function listening(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[3] === '0A' && cols[1].endsWith(`:${hex}`)) return true;
    }
  }
  return false;
}

function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(st);
  } catch {
    return false;
  }
}

async function start(ports, extra = {}) {
  const env = {
    ...process.env,
    ERPQ_RUN_DIR: runDir, ERPQ_RUN_NO_BUILD: '1', ERPQ_RUN_BIN: e.binDir,
    ERPQ_RUN_REDIS_PORT: String(ports.redis), ERPQ_RUN_MYSQL_PORT: String(ports.mysql),
    ERPQ_RUN_S3_PORT: String(ports.s3), ERPQ_RUN_SMTP_PORT: String(ports.smtp),
    ERPQ_RUN_MAILDEV_WEB_PORT: String(ports.mailweb), ERPQ_RUN_SMS_PORT: String(ports.sms),
    ERPQ_HTTP_ADDR: `127.0.0.1:${ports.http}`, ERPQ_DEMO_STUDENTS: '20',
  };
  delete env.ERPQ_RUN_S3;
  for (const v of ['ERPQ_REDIS_URL', 'ERPQ_MYSQL_URL', 'ERPQ_JWT_SECRET', 'ERPQ_JWT_SECRET_FILE',
    'ERPQ_QUEUES', 'ERPQ_DIAG_QUEUES', 'ERPQ_STORAGE_DIR', 'ERPQ_PUBLIC_URL']) delete env[v];
  for (const v of Object.keys(env)) {
    if (/^ERPQ_(S3|SMTP|SMS|MAIL|MONGO|UNSUBSCRIBE|STORAGE)_/.test(v)) delete env[v];
  }
  Object.assign(env, extra);
  // detached: a new process group, as a terminal's foreground job has.
  const c = spawn(path.join(ROOT, 'scripts', 'run'), [], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { c, out: '', exited: new Promise(r => c.once('exit', (code, signal) => r({ code, signal }))) };
  c.stdout.on('data', d => { s.out += d; });
  c.stderr.on('data', d => { s.out += d; });
  await h.waitFor(() => s.out.includes('scripts/run: ready') || c.exitCode !== null, {
    timeout: 120000, interval: 100, message: () => `scripts/run to be ready:\n${s.out.slice(-2000)}`,
  });
  assert.equal(c.exitCode, null, s.out.slice(-2000));
  return s;
}

function pids() {
  const read = f => { try { return Number(fs.readFileSync(path.join(runDir, f), 'utf8')); } catch { return 0; } };
  return {
    redis: read('redis/redis.pid'), mariadb: read('mariadb/mariadb.pid'), s3: read('s3/s3rver.pid'),
    maildev: read('maildev/maildev.pid'), sms: read('sms/sms.pid'),
  };
}

test('Ctrl-C to the process group stops everything in order; a restart right after works', async () => {
  const ports = {};
  for (const k of ['redis', 'mysql', 's3', 'smtp', 'mailweb', 'sms', 'http']) ports[k] = await h.freePort();
  // Round 1: report files in .run/reports (the default), links served by
  // the HTTP API; round 2: ERPQ_RUN_S3=1, an s3rver of its own.
  for (let round = 1; round <= 2; round++) {
    const s3 = round === 2;
    const s = await start(ports, s3 ? { ERPQ_RUN_S3: '1' } : {});
    child = s.c;
    const started = pids();
    if (!s3) delete started.s3;
    assert.ok(Object.values(started).every(Boolean), `servers recorded: ${JSON.stringify(started)}`);
    // The block names what runs where.
    assert.match(s.out, new RegExp(`MySQL +mysql://erpq:[^@]+@127\\.0\\.0\\.1:${ports.mysql}/erp`));
    assert.match(s.out, /erpq-producer token --role accountant --school 1/);
    assert.doesNotMatch(s.out, /no_handlers|level":"warn/, 'no warnings about its own queues');
    // Use the stack with the settings it wrote for other shells.
    const envFile = fs.readFileSync(path.join(runDir, 'env'), 'utf8');
    const env = { ...process.env };
    for (const m of envFile.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
    const cli = (...a) => execFileSync(path.join(e.binDir, 'erpq-producer'), a, { env }).toString().trim();
    // A report of the demo school: its link (the API's /v1/files/, or
    // the s3rver's) downloads the file, and so does the download route.
    const out = cli('add', 'reports', 'fee-collection', '--data',
      '{"schoolId":1,"from":"2000-01-01","to":"2099-12-31","format":"csv"}', '--wait', '--timeout', '60');
    const rv = JSON.parse(out.split('\n').slice(1).join('\n'));
    assert.equal(rv.storage, s3 ? 's3' : 'local', out);
    assert.ok(rv.url.startsWith(s3 ? `http://127.0.0.1:${ports.s3}/` : `http://127.0.0.1:${ports.http}/v1/files/`), out);
    const acc = cli('token', '--role', 'accountant', '--school', '1');
    for (const [what, res] of [['the result\'s link', await fetch(rv.url)],
      ['the download route', await fetch(`http://127.0.0.1:${ports.http}/v1/queues/reports/jobs/${out.split('\n')[0]}/download`,
        { headers: { authorization: `Bearer ${acc}` } })]]) {
      assert.equal(res.status, 200, what);
      const buf = Buffer.from(await res.arrayBuffer());
      assert.equal(buf.length, rv.bytes, what);
      assert.equal(require('node:crypto').createHash('sha256').update(buf).digest('hex'), rv.sha256, what);
    }
    if (round === 1) {
      // Fee reminders of the demo school: mails in maildev, texts at the
      // SMS stand-in, as many as the result says were enqueued.
      const rem = cli('add', 'notifications', 'fee-reminders', '--data',
        '{"schoolId":1,"asOf":"2026-05-01","channels":["email","sms"]}', '--wait', '--timeout', '60');
      const rr = JSON.parse(rem.split('\n').slice(1).join('\n'));
      assert.ok(rr.enqueued > 0, rem);
      const mails = () => fetch(`http://127.0.0.1:${ports.mailweb}/api/email`).then(r => r.json());
      const texts = () => fetch(`http://127.0.0.1:${ports.sms}/__requests`).then(r => r.json());
      await h.waitFor(async () => (await mails()).length + (await texts()).length >= rr.enqueued,
        { timeout: 60000, message: () => `${rr.enqueued} sends to arrive: ${rem}` });
      assert.ok((await mails()).length > 0 && (await texts()).length > 0, 'both channels used');
    }
    const id = cli('add', 'erpq-diag', 'sleep', '--data', '{"ms":2500}');
    const token = cli('token', '--role', 'admin');
    const poll = fetch(`http://127.0.0.1:${ports.http}/v1/queues/erpq-diag/jobs/${id}/wait?timeout=30`,
      { headers: { authorization: `Bearer ${token}` } });
    await h.sleep(500);
    const t0 = Date.now();
    process.kill(-s.c.pid, 'SIGINT'); // what a terminal's Ctrl-C does
    const res = await poll;
    const body = await res.json();
    assert.equal(res.status, 200, `the pending long-poll was answered: ${JSON.stringify(body)}`);
    assert.equal(body.id, id);
    const ex = await Promise.race([s.exited, h.sleep(60000).then(() => null)]);
    assert.ok(ex, `scripts/run still running 60 s after Ctrl-C:\n${s.out.slice(-1500)}`);
    assert.equal(ex.code, 0, s.out.slice(-1500));
    t_diag(`round ${round}: stopped ${Date.now() - t0} ms after Ctrl-C`);
    // Order: API, worker, SMS stand-in, maildev, s3rver (round 2), MariaDB, Redis.
    const order = ['stopping the HTTP API', 'stopping the worker', 'stopping the SMS stand-in', 'stopping the maildev',
      ...(s3 ? ['stopping the s3rver'] : []), 'stopping the MariaDB', 'stopping the Redis']
      .map(m => s.out.indexOf(m));
    assert.ok(order.every((v, i) => v >= 0 && (i === 0 || v > order[i - 1])), `stop order ${order}:\n${s.out.slice(-1500)}`);
    for (const [name, pid] of Object.entries(started)) assert.ok(!alive(pid), `${name} (pid ${pid}) left running`);
    for (const [name, port] of Object.entries(ports)) assert.ok(!listening(port), `${name} port ${port} still in LISTEN`);
  }
});

let diagnostics = [];
function t_diag(m) { diagnostics.push(m); process.stdout.write(`# ${m}\n`); }
