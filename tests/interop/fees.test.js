'use strict';
// create-fee jobs enqueued by Node bull 4.16.5 with addBulk (the textbook
// backend pattern) and processed by our worker against MariaDB: every fee
// is created once even when the batch is enqueued twice, job.finished()
// resolves with our result, and bad data fails for good with a reason.
//
// Needs ERPQ_TEST_MYSQL_URL (fails, never skips, without it); makes its own
// database erp_<random> with the mariadb client and drops it afterwards.
const { test, before, after } = require('node:test');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const h = require('./lib/harness');

const { assert } = h;
let db; let url; let my; let prefix;

function sql(q) {
  return execFileSync('mariadb', ['--no-defaults', '-h', my.hostname, '-P', my.port || '3306',
    '-u', decodeURIComponent(my.username), `-p${decodeURIComponent(my.password)}`, '-N', '-B', db, '-e', q],
  { encoding: 'utf8' }).trim();
}

before(() => {
  const e = h.env();
  const base = process.env.ERPQ_TEST_MYSQL_URL;
  if (!base) throw new Error('ERPQ_TEST_MYSQL_URL is not set (throwaway MariaDB started by scripts/test)');
  my = new URL(base);
  db = `erp_i${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  prefix = `fi${process.pid}`;
  execFileSync('mariadb', ['--no-defaults', '-h', my.hostname, '-P', my.port || '3306',
    '-u', decodeURIComponent(my.username), `-p${decodeURIComponent(my.password)}`, '-e',
    `CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`]);
  url = `mysql://${my.username}:${my.password}@${my.hostname}:${my.port || 3306}/${db}`;
  const env = { ...process.env, ERPQ_MYSQL_URL: url };
  execFileSync(e.worker, ['migrate'], { env });
  execFileSync(e.worker, ['seed-demo', '--students', '40'], { env });
  process.env.ERPQ_MYSQL_URL = url; // inherited by the worker
});

after(async () => {
  await h.cleanup();
  if (db) sql(`DROP DATABASE \`${db}\``);
});

test('create-fee: Node addBulk -> erpq-worker, idempotent, results and failures', async () => {
  const w = await h.startWorker({ queue: 'bulk-operations', concurrency: 4, diag: false,
    args: ['--prefix', prefix] });
  assert.ok(w.running);
  const q = h.queue('bulk-operations', { prefix });
  q.setMaxListeners(500);
  const rows = sql("SELECT s.id, fs.id FROM students s JOIN fee_structures fs ON fs.class_id = s.class_id " +
    "JOIN fee_heads h ON h.id = fs.fee_head_id AND h.code = 'TUITION' ORDER BY s.id")
    .split('\n').map(l => l.split('\t').map(Number));
  assert.equal(rows.length, 40);
  const bulk = rows.map(([studentId, feeStructureId], i) => ({
    name: 'create-fee',
    data: { studentId, feeStructureId, period: '2027-03', dueDate: '2027-03-10', amount: 100000 + i },
    opts: { attempts: 3, backoff: 100 },
  }));
  const first = await q.addBulk(bulk);
  const again = await q.addBulk(bulk); // a double click: the same batch again
  const res1 = await Promise.all(first.map(j => j.finished()));
  const res2 = await Promise.all(again.map(j => j.finished()));
  for (let i = 0; i < rows.length; i++) {
    assert.equal(res1[i].amountMinor, 100000 + i);
    assert.equal(res1[i].feeId, res2[i].feeId);
    assert.equal(res1[i].created !== res2[i].created, true, 'exactly one of the two created it');
  }
  assert.equal(sql("SELECT COUNT(*) FROM fees WHERE period = '2027-03'"), '40');
  assert.equal(sql("SELECT SUM(amount_minor) FROM fees WHERE period = '2027-03'"),
    String(40 * 100000 + (39 * 40) / 2));
  // Bad data: failed at once (discarded), reason names the field.
  const [bad] = await q.addBulk([{ name: 'create-fee',
    data: { studentId: rows[0][0], feeStructureId: rows[0][1], period: '2027-04', dueDate: '2027-04-10', amount: 10.5 },
    opts: { attempts: 5 } }]);
  // (our handler says 'data.amount must be an integer number of minor units';
  // a schema check in front of it names /data/amount)
  await assert.rejects(bad.finished(), /data[./]amount/);
  const j = await q.getJob(bad.id);
  assert.equal(j.attemptsMade, 1);
  assert.equal(sql("SELECT COUNT(*) FROM fees WHERE period = '2027-04'"), '0');
});
