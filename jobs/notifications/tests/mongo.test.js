'use strict';
// Records in MongoDB through the outbox, end to end: the real erpq-worker
// sends mails (to maildev) and its relay writes the outbox rows to a
// MongoDB peer made of Debian's python3-mockupdb (tests/mongo_peer.py:
// wire protocol, every command as sent, a memory of stored _ids; there is
// no MongoDB server in Debian). Checked: the insert commands (collection,
// database, ordered: false, writeConcern majority), the exact documents
// and their _ids (notifications: SHA-256 of the dedup key; audit_log:
// "ob:<outbox id>"), BSON dates; then MongoDB unreachable for a while:
// the backlog grows and is logged, nothing is lost, and once the peer is
// back (dropping its first answer after storing, as a dying server would)
// every record is stored exactly once, the retry's duplicates answered
// 11000 and taken as "already recorded". Meanwhile the HTTP API's
// /metrics shows the backlog the relay counts (erpq_outbox_backlog_rows,
// erpq_outbox_mongo_up), and 0 / up once it has drained.
//
// Needs ERPQ_TEST_REDIS_URL, ERPQ_TEST_MYSQL_URL, ERPQ_TEST_SMTP_URL.
const { test, before, after } = require('node:test');
const path = require('node:path');
const { spawn } = require('node:child_process');
const n = require('./lib/notify_env');

const { h } = n;
const { assert } = h;
let db; let prefix; let w; let q; let port; let peer; let api;
const inserts = [];

const vars = { recipientName: 'Priya', reportTitle: 'Dues', schoolName: 'Sunrise', downloadUrl: 'https://x.example.test/d',
  expiresAt: '2026-12-09', rows: 3, format: 'pdf' };

function startPeer(args) {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', [path.join(n.TESTS, 'mongo_peer.py'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = ''; let err = '';
    child.stderr.on('data', d => { err += d; });
    child.stdout.on('data', d => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('READY')) resolve({ child, port: Number(line.split('=')[1]),
          stop: () => new Promise(r => { child.once('exit', r); child.stdin.end(); }) });
        else inserts.push(JSON.parse(line));
      }
    });
    child.once('exit', code => reject(new Error(`mongo_peer exited ${code}: ${err}`)));
  });
}

before(async () => {
  h.env();
  db = n.makeDb(2);
  prefix = `nm${process.pid}`;
  peer = await startPeer(['--port', '0']);
  port = peer.port;
  w = await n.startNotifyWorker({ queues: ['email:5'], env: n.workerEnv(db, prefix, {
    ERPQ_MONGO_URL: `mongodb://127.0.0.1:${port}/erp_audit?directConnection=true&serverSelectionTimeoutMS=1000`,
    ERPQ_OUTBOX_IDLE_MS: '100', ERPQ_OUTBOX_LOG_MS: '300' }) });
  q = h.queue('email', { prefix });
  // The HTTP API on the same Redis and prefix: its /metrics page.
  const apiPort = await h.freePort();
  const child = h.spawnBin(path.join(process.env.ERPQ_BIN_DIR, 'erpq-producer'), ['--redis', process.env.ERPQ_TEST_REDIS_URL,
    '--prefix', prefix, 'serve', '--listen', `127.0.0.1:${apiPort}`],
  { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, ERPQ_JWT_SECRET: 'x'.repeat(40) } });
  api = { child, base: `http://127.0.0.1:${apiPort}` };
  await h.waitFor(async () => {
    try { return (await fetch(`${api.base}/healthz`)).status === 200; } catch { return false; }
  }, { timeout: 20000, message: 'erpq-producer serve to answer' });
});

async function outboxGauge() {
  const text = await (await fetch(`${api.base}/metrics`)).text();
  const get = name => {
    const m = text.match(new RegExp(`^${name} ([0-9.]+)$`, 'm'));
    return m ? Number(m[1]) : undefined;
  };
  return { rows: get('erpq_outbox_backlog_rows'), up: get('erpq_outbox_mongo_up'), age: get('erpq_outbox_backlog_age_seconds') };
}

after(async () => {
  if (api && api.child.exitCode === null) api.child.kill('SIGTERM');
  await h.cleanup();
  if (peer) await peer.stop().catch(() => {});
  if (db) db.drop();
});

const ms = d => (d && d.$date && typeof d.$date === 'object' ? Number(d.$date.$numberLong) : d && d.$date);

function outboxRows() {
  return db.rows('SELECT id, aggregate_type, aggregate_id, event_type, payload, published_at IS NOT NULL,'
    + ' CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) FROM outbox ORDER BY id')
    .map(([id, type, agg, event, payload, pub, at]) => ({ id, type, agg, event, payload: JSON.parse(payload), pub: pub === '1', at: Number(at) }));
}

async function send(keys) {
  const t0 = Date.now();
  const res = await Promise.all(keys.map(async k => (await q.add('send-email', { schoolId: 1, to: `${k}@example.org`,
    template: 'report-ready', vars, dedupKey: k })).finished()));
  return { t0, t1: Date.now(), res };
}

test('the documents and _ids the relay writes', async () => {
  const keys = ['mongo-1', 'mongo-2', 'mongo-3'];
  const { t0, t1 } = await send(keys);
  await h.waitFor(() => outboxRows().length === 6 && outboxRows().every(r => r.pub), { timeout: 15000, message: 'outbox published' });
  await h.waitFor(() => inserts.reduce((s, i) => s + i.docs.length, 0) >= 6, { message: 'the peer to report its inserts' });
  const stored = inserts.flatMap(i => i.docs.map(d => ({ coll: i.coll, d })));
  for (const i of inserts) {
    assert.equal(i.db, 'erp_audit');
    assert.equal(i.ordered, false);
    assert.deepEqual(i.writeConcern, { w: 'majority' });
  }
  const notes = stored.filter(x => x.coll === 'notifications').map(x => x.d);
  assert.deepEqual(notes.map(d => d._id).sort(), keys.map(n.sha256).sort());
  for (const d of notes) {
    const k = keys.find(x => n.sha256(x) === d._id);
    const job = await q.getJob(d.job.id);
    assert.deepEqual(Object.keys(d).sort(), ['_id', 'attempts', 'channel', 'createdAt', 'job', 'locale',
      'providerMessageId', 'schoolId', 'sentAt', 'status', 'template', 'to', 'updatedAt']);
    assert.deepEqual({ ...d, createdAt: 0, sentAt: 0, updatedAt: 0 }, { _id: n.sha256(k), attempts: 1, channel: 'email',
      createdAt: 0, job: { queue: 'email', id: job.id }, locale: 'en', providerMessageId: n.messageId(k), schoolId: 1,
      sentAt: 0, status: 'sent', template: 'report-ready', to: `${k[0]}***@example.org`, updatedAt: 0 });
    for (const f of ['createdAt', 'sentAt', 'updatedAt']) {
      assert.equal(typeof d[f].$date, 'number', `${f} is a BSON date`);
      assert.ok(d[f].$date >= t0 - 1000 && d[f].$date <= t1 + 1000, `${f} in the run`);
    }
    assert.ok(d.createdAt.$date <= d.sentAt.$date);
  }
  const audits = stored.filter(x => x.coll === 'audit_log').map(x => x.d);
  const rows = outboxRows().filter(r => r.event === 'notification.sent');
  assert.deepEqual(audits.map(d => d._id).sort(), rows.map(r => `ob:${r.id}`).sort());
  for (const d of audits) {
    const r = rows.find(x => `ob:${x.id}` === d._id);
    assert.deepEqual({ ...d, at: ms(d.at) }, { _id: `ob:${r.id}`, type: 'notification.sent', aggregateType: 'notification',
      aggregateId: r.agg, at: r.at, data: r.payload });
    assert.equal(d.data.notificationId, r.agg);
    assert.equal(d.data.to.includes('***@'), true);
  }
  // No document holds an address in clear.
  assert.ok(!JSON.stringify(stored).includes('mongo-1@'));
});

test('MongoDB unreachable for a while: the backlog waits, is logged, and every record arrives once', async () => {
  await peer.stop();
  peer = null;
  inserts.length = 0;
  const keys = ['late-1', 'late-2', 'late-3'];
  await send(keys);
  const down = await w.waitLog('outbox.mongo_down', {}, 15000);
  assert.ok(down.error);
  const backlog = await h.waitFor(() => w.events('outbox.backlog').find(l => l.rows >= 6 && l.mongo === 'down'),
    { timeout: 15000, message: 'an outbox.backlog line' });
  assert.equal(backlog.level, 'warn');
  await h.sleep(1500); // still down: more tries, nothing lost
  assert.equal(outboxRows().filter(r => !r.pub).length, 6);
  const g = await h.waitFor(async () => { const x = await outboxGauge(); return x.rows >= 6 && x.up === 0 ? x : null; },
    { timeout: 10000, message: 'the backlog gauge on /metrics' });
  assert.ok(g.age < 5, `a fresh count (${g.age} s old)`);
  peer = await startPeer(['--port', String(port), '--hangup-first']);
  await w.waitLog('outbox.mongo_up', {}, 40000);
  await h.waitFor(() => outboxRows().every(r => r.pub), { timeout: 40000, message: 'the backlog drained' });
  await h.waitFor(async () => { const x = await outboxGauge(); return x.rows === 0 && x.up === 1; },
    { timeout: 10000, message: 'the gauge back at 0, MongoDB up' });
  await h.waitFor(() => inserts.reduce((s, i) => s + i.stored.length, 0) >= 6, { message: 'the peer to report its inserts' });
  assert.ok(inserts.some(i => i.hangup), 'the first write was taken and not answered');
  assert.ok(inserts.some(i => i.dups.length > 0), 'its retry met the documents already there');
  const storedIds = inserts.flatMap(i => i.stored);
  assert.equal(new Set(storedIds).size, storedIds.length, 'nothing stored twice');
  const want = [...keys.map(n.sha256), ...outboxRows().filter(r => r.event === 'notification.sent' && keys.some(k => r.agg === n.sha256(k))).map(r => `ob:${r.id}`)];
  assert.deepEqual(storedIds.sort(), want.sort(), 'every record of the outage stored once');
});
