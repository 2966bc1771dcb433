'use strict';
// What a new user meets: the CLI checks what the API checks before it sends
// anything; list and logs show what happened (CLI and HTTP, tenant-scoped);
// add --wait draws progress on a terminal and prints plain lines otherwise;
// HTTP details (WWW-Authenticate, a token that is not a JWT, an
// Idempotency-Key reused with another request, unknown job options).
const { test, after, before } = require('node:test');
const { execFile, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');
const { assert } = h;

const e = h.env();
const CLI = path.join(e.binDir, 'erpq-producer');
const SECRET = 'seeing-test-secret-0123456789abcdef0123';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'erpq-seeing-'));
after(() => h.cleanup());

function cli(args, { env = {} } = {}) {
  return new Promise(resolve => {
    execFile(CLI, ['--redis', e.redisUrl, ...args], { env: { ...process.env, ...env } },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

test('the CLI refuses what the API refuses, listing every problem, before sending anything', async () => {
  const r = h.redis();
  // Nothing sent: no id was taken in any queue these adds name (other keys
  // of a shared server may come and go meanwhile).
  const queues = ['no-such-queue', 'erpq-diag', 'bulk-operations'];
  const ids = () => Promise.all(queues.map(q => r.get(`bull:${q}:id`)));
  const before = await ids();
  let res = await cli(['add', 'no-such-queue', 'echo']);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /queue 'no-such-queue' is not served/);
  res = await cli(['add', 'erpq-diag', 'nosuch']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /'nosuch' is not a job queue erpq-diag takes \(it takes: .*echo/);
  res = await cli(['add', 'erpq-diag', 'echo', '--opts', '{"atempts":3}']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /\/opts\/atempts: is not a job option \(did you mean attempts\?\)/);
  res = await cli(['add', 'bulk-operations', 'generate-fees', '--data', '{"schoolId":"x","period":"2026-13"}']);
  assert.equal(res.code, 2);
  for (const p of ['/data/schoolId', '/data/period', '/data/dueDate']) assert.ok(res.stderr.includes(p), res.stderr);
  res = await cli(['add', 'erpq-diag', 'echo', '--frobnicate']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /unknown option '--frobnicate'/);
  // add-bulk: a bad line refuses the whole file.
  const f = path.join(tmp, 'bulk.jsonl');
  fs.writeFileSync(f, '{"name":"echo","data":{}}\n{"name":"fail","data":{"times":-1}}\n');
  res = await cli(['add-bulk', 'erpq-diag', f]);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /\/line 2\/data\/times/);
  assert.deepEqual(await ids(), before, 'nothing was sent');
  assert.deepEqual(await r.keys('bull:no-such-queue:*'), []);
  // --no-validate: the rare case, sent as it is.
  const q = h.qname('novalidate');
  res = await cli(['add', q, 'anything', '--no-validate', '--data', '{"x":1}']);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout.trim(), /^\d+$/);
});

test('list and logs show the failed jobs of a queue and a job\'s log lines', async t => {
  const q = h.qname('list');
  const w = await h.startWorker({ queue: q });
  t.after(() => w.kill9());
  const Q = h.queue(q);
  const ok = await Q.add('progress', { steps: 2 });
  await ok.finished();
  const bad = [];
  for (let i = 0; i < 3; i++) bad.push(await Q.add('fail', { message: `boom ${i}` }));
  for (const j of bad) await j.finished().catch(() => {});
  let res = await cli(['list', q, '--state', 'failed']);
  assert.equal(res.code, 0, res.stderr);
  const rows = res.stdout.trim().split('\n');
  assert.match(rows[0], /^ID +NAME +TRY +WHEN \(UTC\) +REASON/);
  assert.deepEqual(rows.slice(1).map(l => l.split(/\s+/)[0]), bad.map(j => String(j.id)).reverse(), 'newest first');
  assert.match(rows[1], /boom 2$/);
  res = await cli(['list', q, '--state', 'failed', '--limit', '2', '--json']);
  const arr = JSON.parse(res.stdout);
  assert.equal(arr.length, 2);
  assert.equal(arr[0].failedReason, 'boom 2');
  assert.equal(arr[0].state, 'failed');
  res = await cli(['list', q, '--state', 'nosuch']);
  assert.equal(res.code, 2);
  res = await cli(['logs', q, String(ok.id)]);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(res.stdout.trim().split('\n'), ['step 1 of 2', 'step 2 of 2']);
  res = await cli(['logs', q, '999999']);
  assert.equal(res.code, 1);
});

test('add --wait shows progress: a bar on a terminal, plain lines otherwise', async t => {
  const q = h.qname('progress');
  const w = await h.startWorker({ queue: q });
  t.after(() => w.kill9());
  // The CLI knows the worker's bindings from the same variable it reads.
  process.env.ERPQ_QUEUES = `${q}@diag`;
  // Not a terminal: one line per change on stderr, the result on stdout.
  let res = await cli(['add', q, 'progress', '--data', '{"steps":3}', '--wait']);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(res.stderr.trim().split('\n'), ['progress: 1', 'progress: 2', 'progress: 3']);
  assert.equal(res.stdout.trim().split('\n')[1], '{"steps":3}');
  // A pseudo-terminal (Python's pty): the bar is redrawn in place with \r.
  const script = `
import os, pty, sys
out = b''
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf-8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(st))
`;
  const py = spawn('/usr/bin/python3', ['-c', script, CLI, '--redis', e.redisUrl, 'add', q, 'progress',
    '--data', '{"steps":3}', '--wait'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', d => { out += d; });
  const code = await new Promise(r => py.on('exit', r));
  assert.equal(code, 0, out);
  assert.match(out, /\r {2}\[#.*\] +3%\x1b\[K/, JSON.stringify(out));
  assert.doesNotMatch(out, /progress: /, 'no plain lines on a terminal');
  assert.match(out, /\{"steps":3\}/);
  delete process.env.ERPQ_QUEUES;
});

function b64(o) { return Buffer.from(JSON.stringify(o)).toString('base64url'); }
function jwt(claims) {
  const now = Math.floor(Date.now() / 1000);
  const data = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: now + 300, ...claims })}`;
  return `${data}.${crypto.createHmac('sha256', SECRET).update(data).digest('base64url')}`;
}

let S;
before(async () => {
  const port = await h.freePort();
  const child = h.spawnBin(CLI, ['--redis', e.redisUrl, 'serve', '--listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ERPQ_JWT_SECRET: SECRET } });
  S = { child, base: `http://127.0.0.1:${port}` };
  await h.waitFor(async () => (await fetch(`${S.base}/healthz`)).status === 200, { timeout: 10000 });
});
after(() => { if (S) S.child.kill('SIGTERM'); });

async function call(method, p, { token, body, headers = {} } = {}) {
  const hd = { ...headers };
  if (token) hd.authorization = `Bearer ${token}`;
  if (body !== undefined) hd['content-type'] = 'application/json';
  const res = await fetch(`${S.base}${p}`, { method, headers: hd, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

test('HTTP: list and logs, tenant-scoped', async t => {
  const q = 'erpq-diag';
  const w = await h.startWorker({ queue: q, args: ['--diag-catch-all'] });
  t.after(() => w.kill9());
  const admin = jwt({ sub: 'adm', role: 'admin' });
  const a = await call('POST', `/v1/queues/${q}/jobs`, { token: admin, body: { name: 'progress', data: { steps: 2, schoolId: 7 } } });
  const b = await call('POST', `/v1/queues/${q}/jobs`, { token: admin, body: { name: 'progress', data: { steps: 1, schoolId: 8 } } });
  assert.equal(a.status, 201, a.text);
  await call('GET', `/v1/queues/${q}/jobs/${b.json.id}/wait?timeout=10`, { token: admin });
  await call('GET', `/v1/queues/${q}/jobs/${a.json.id}/wait?timeout=10`, { token: admin });
  let r = await call('GET', `/v1/queues/${q}/jobs?state=completed&limit=5`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.jobs.length >= 2);
  const fin = r.json.jobs.map(j => j.finishedOn);
  assert.deepEqual(fin, [...fin].sort((x, y) => y - x), 'newest first');
  // A school's token sees only its school's jobs, in the list and the logs.
  const acc7 = jwt({ sub: 'acc', role: 'admin', school_id: 7 });
  r = await call('GET', `/v1/queues/${q}/jobs?state=completed&limit=50`, { token: acc7 });
  assert.ok(r.json.jobs.every(j => j.data.schoolId === 7), JSON.stringify(r.json.jobs.map(j => j.data)));
  assert.ok(r.json.jobs.some(j => j.id === a.json.id));
  r = await call('GET', `/v1/queues/${q}/jobs/${a.json.id}/logs`, { token: acc7 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.logs, ['step 1 of 2', 'step 2 of 2']);
  r = await call('GET', `/v1/queues/${q}/jobs/${b.json.id}/logs`, { token: acc7 });
  assert.equal(r.status, 404, "another school's job");
  r = await call('GET', `/v1/queues/${q}/jobs?state=bogus`, { token: admin });
  assert.equal(r.status, 400);
  r = await call('GET', `/v1/queues/${q}/jobs?state=failed&limit=0`, { token: admin });
  assert.equal(r.status, 400);
});

test('HTTP: WWW-Authenticate, a token that is not a JWT, reused Idempotency-Keys, unknown options', async () => {
  let r = await call('GET', '/v1/queues/erpq-diag');
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="erpq"');
  r = await call('GET', '/v1/queues/erpq-diag', { token: 'abc.def.ghi' });
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="erpq", error="invalid_token"');
  assert.match(r.json.error.message, /not a JWT/);
  const be = jwt({ sub: 'be', role: 'backend' });
  const q = h.qname('idem');
  const hk = { 'idempotency-key': `k-${Date.now()}` };
  // An unknown queue of the roles file: use the diag queue for a served one.
  const first = await call('POST', '/v1/queues/erpq-diag/jobs', { token: be, headers: hk, body: { name: 'echo', data: { n: 1 } } });
  assert.equal(first.status, 201, first.text);
  const again = await call('POST', '/v1/queues/erpq-diag/jobs', { token: be, headers: hk, body: { name: 'echo', data: { n: 1 } } });
  assert.equal(again.status, 200);
  assert.equal(again.json.id, first.json.id);
  const other = await call('POST', '/v1/queues/erpq-diag/jobs', { token: be, headers: hk, body: { name: 'echo', data: { n: 2 } } });
  assert.equal(other.status, 422, other.text);
  assert.equal(other.json.error.code, 'idempotency_key_reused');
  const typo = await call('POST', '/v1/queues/erpq-diag/jobs', { token: be, body: { name: 'echo', data: {}, opts: { atempts: 3 } } });
  assert.equal(typo.status, 422);
  assert.deepEqual(typo.json.error.details, [{ path: '/opts/atempts', message: 'is not a job option (did you mean attempts?)' }]);
  void q;
});
