'use strict';
// The HTTP API (erpq-producer serve) against a real Redis, our worker and a
// Node bull 4.16.5 worker: every endpoint, JWT (forged, expired, not yet
// valid, wrong algorithm, alg none, RS256), the role matrix, tenant scoping,
// validation, idempotency, bulk all-or-nothing, long-poll, rate limits,
// oversized/malformed bodies, a slow client, and Redis going away.

const { test, after, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const dns = require('node:dns').promises;
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'erpq-http-'));
const Q = h.qname('http');          // jobs run by our worker
const QN = h.qname('http-node');    // jobs run by a Node bull worker
const QR = h.qname('http-reports'); // schema-checked jobs, never processed

const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
fs.writeFileSync(path.join(tmp, 'rs.pem'), publicKey.export({ type: 'spki', format: 'pem' }));

fs.writeFileSync(path.join(tmp, 'roles.json'), JSON.stringify({
  queues: {
    [Q]: ['echo', 'sleep', 'fail'],
    [QN]: ['echo'],
    [QR]: ['generate-fees', 'fee-statement', 'other'],
  },
  roles: {
    admin: [{ action: '*', queue: '*', job: '*' }],
    backend: [{ action: 'enqueue', queue: '*', job: '*' }, { action: 'read', queue: '*' }, { action: 'counts', queue: '*' }],
    accountant: [
      { action: 'enqueue', queue: QR, job: 'generate-fees' },
      { action: 'enqueue', queue: QR, job: 'fee-statement' },
      { action: 'enqueue', queue: Q, job: 'echo' },
      { action: 'read', queue: QR }, { action: 'read', queue: Q },
    ],
  },
}));
// The server and our workers check job data with the schemas built into
// them (jobs/<family>/schemas/<job>.json): generate-fees on QR is checked
// with the fee family's schema although QR is not a fee queue.

function b64(o) { return Buffer.from(JSON.stringify(o)).toString('base64url'); }
function jwt(claims = {}, { alg = 'HS256', secret = SECRET, header = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { sub: 'svc-1', role: 'backend', exp: now + 300, ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  const data = `${b64({ alg, typ: 'JWT', ...header })}.${b64(payload)}`;
  if (alg === 'none') return `${data}.`;
  if (alg === 'RS256') return `${data}.${crypto.sign('sha256', Buffer.from(data), privateKey).toString('base64url')}`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return `${data}.${crypto.createHmac(hash, secret).update(data).digest('base64url')}`;
}
const T = {
  admin: jwt({ sub: 'adm', role: 'admin' }),
  backend: jwt({ sub: 'be', role: 'backend' }),
  acc7: jwt({ sub: 'acc-7', role: 'accountant', school_id: 7 }),
  acc8: jwt({ sub: 'acc-8', role: 'accountant', school_id: 8 }),
  teacher: jwt({ sub: 'tch', role: 'teacher' }),
};


const servers = [];
// host: the HOST of --listen HOST:PORT; the tests' base URL uses it too
// (base, when given, is the host the tests call instead).
async function startServer({ args = [], redisUrl, env = {}, prefix = 'bull', host = '127.0.0.1', base } = {}) {
  const e = h.env();
  const port = await h.freePort();
  const child = h.spawnBin(path.join(e.binDir, 'erpq-producer'), ['--redis', redisUrl || e.redisUrl, '--prefix', prefix, 'serve',
    '--listen', `${host}:${port}`, '--roles', path.join(tmp, 'roles.json'),
    '--jwt-rs256-key', path.join(tmp, 'rs.pem'), ...(args.includes('--jwt-leeway') ? [] : ['--jwt-leeway', '5']), ...args],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ERPQ_JWT_SECRET: SECRET, ...env } });
  const s = { child, port, base: `http://${base || host}:${port}`, out: '' };
  child.stdout.on('data', d => { s.out += d; });
  child.stderr.on('data', d => { s.out += d; });
  servers.push(s);
  await h.waitFor(async () => (await fetch(`${s.base}/healthz`)).status === 200, { timeout: 10000, message: 'serve to answer' });
  return s;
}

let S;
async function call(method, p, { token, body, raw, headers = {}, server } = {}) {
  const hd = { ...headers };
  if (token) hd.authorization = `Bearer ${token}`;
  if (body !== undefined || raw !== undefined) hd['content-type'] = 'application/json';
  const res = await fetch(`${(server || S).base}${p}`, {
    method, headers: hd, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}
function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  if (code) assert.equal(r.json.error.code, code);
}

before(async () => { S = await startServer({ args: ['--rate-subject', '0', '--rate-ip', '0'] }); });
after(async () => {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGTERM');
  await h.cleanup();
});

test('health, readiness, metrics, unknown routes and methods', async () => {
  assert.equal((await call('GET', '/healthz')).json.status, 'ok');
  assert.equal((await call('GET', '/readyz')).json.status, 'ready');
  assertError(await call('GET', '/nope'), 404, 'not_found');
  assertError(await call('GET', '/v1/queues/x/jobs/1/zzz', { token: T.admin }), 404, 'not_found');
  const r = await call('PUT', `/v1/queues/${Q}/jobs`, { token: T.admin });
  assertError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.get('allow'), 'GET, POST');
  assertError(await call('GET', `/v1/queues/no-such-queue`, { token: T.admin }), 404, 'queue_not_found');
  const m = await call('GET', '/metrics');
  assert.match(m.text, /erpq_http_requests_total\{route="\/healthz",method="GET",status="200"\} \d+/);
  assert.match(m.text, /erpq_http_request_duration_seconds_bucket\{route="\/healthz",method="GET",le="\+Inf"\} \d+/);
  assert.match(m.text, /^# TYPE erpq_log_dropped_total counter\nerpq_log_dropped_total 0$/m);
});

test('tokens: missing, forged, expired, not yet valid, no exp, wrong algorithm, alg none, RS256', async () => {
  const p = `/v1/queues/${Q}`;
  assertError(await call('GET', p), 401, 'unauthorized');
  assertError(await call('GET', p, { headers: { authorization: 'Basic abc' } }), 401);
  assertError(await call('GET', p, { token: jwt({}, { secret: 'another-secret-0123456789abcdef012345' }) }), 401);
  const now = Math.floor(Date.now() / 1000);
  assertError(await call('GET', p, { token: jwt({ exp: now - 60 }) }), 401);
  assert.equal((await call('GET', p, { token: jwt({ exp: now - 2 }) })).status, 200, 'within the leeway');
  assertError(await call('GET', p, { token: jwt({ nbf: now + 60 }) }), 401);
  assertError(await call('GET', p, { token: jwt({ exp: undefined }) }), 401);
  assertError(await call('GET', p, { token: jwt({}, { alg: 'HS384' }) }), 401);
  assertError(await call('GET', p, { token: jwt({}, { alg: 'HS512' }) }), 401);
  assertError(await call('GET', p, { token: jwt({}, { alg: 'none' }) }), 401);
  // alg none with a signature still attached, and an HS256 token "signed"
  // with the RSA public key (key confusion).
  const good = jwt();
  const noneHdr = `${b64({ alg: 'none', typ: 'JWT' })}.${good.split('.')[1]}.${good.split('.')[2]}`;
  assertError(await call('GET', p, { token: noneHdr }), 401);
  const pem = fs.readFileSync(path.join(tmp, 'rs.pem'), 'utf8');
  assertError(await call('GET', p, { token: jwt({}, { secret: pem }) }), 401);
  assertError(await call('GET', p, { token: 'a.b' }), 401);
  assertError(await call('GET', p, { token: jwt({ role: undefined }) }), 401);
  assert.equal((await call('GET', p, { token: jwt({}, { alg: 'RS256' }) })).status, 200);
  assert.equal((await call('GET', p, { token: jwt({}) })).status, 200);
});

test('a token accepted before is refused once it expires (the verified-token cache re-checks exp)', async () => {
  const s = await startServer({ args: ['--jwt-leeway', '0', '--threads', '1'] });
  const tok = jwt({ exp: Math.floor(Date.now() / 1000) + 2 });
  assert.equal((await call('GET', `/v1/queues/${Q}`, { token: tok, server: s })).status, 200);
  assert.equal((await call('GET', `/v1/queues/${Q}`, { token: tok, server: s })).status, 200);
  await h.sleep(3100);
  assertError(await call('GET', `/v1/queues/${Q}`, { token: tok, server: s }), 401);
  s.child.kill('SIGTERM');
});

test('role matrix', async () => {
  const ok = (r, what) => assert.ok(r.status < 300, `${what}: ${r.status} ${r.text}`);
  const feeJob = { name: 'generate-fees', data: { schoolId: 7, period: '2026-01', dueDate: '2026-01-31' } };
  // admin: everything.
  ok(await call('POST', `/v1/queues/${QR}/pause`, { token: T.admin }), 'admin pause');
  ok(await call('POST', `/v1/queues/${QR}/resume`, { token: T.admin }), 'admin resume');
  ok(await call('GET', `/v1/queues/${QR}`, { token: T.admin }), 'admin counts');
  // backend: enqueue and read anything, no pause/delete/retry.
  const b = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, body: feeJob });
  assert.equal(b.status, 201, b.text);
  ok(await call('GET', `/v1/queues/${QR}/jobs/${b.json.id}`, { token: T.backend }), 'backend read');
  ok(await call('GET', `/v1/queues/${QR}`, { token: T.backend }), 'backend counts');
  assertError(await call('POST', `/v1/queues/${QR}/pause`, { token: T.backend }), 403, 'forbidden');
  assertError(await call('DELETE', `/v1/queues/${QR}/jobs/${b.json.id}`, { token: T.backend }), 403);
  assertError(await call('POST', `/v1/queues/${QR}/jobs/${b.json.id}/retry`, { token: T.backend }), 403);
  // accountant: generate-fees and reports, read; nothing else.
  const a = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.acc7, body: feeJob });
  assert.equal(a.status, 201, a.text);
  ok(await call('GET', `/v1/queues/${QR}/jobs/${a.json.id}`, { token: T.acc7 }), 'accountant read');
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.acc7, body: { name: 'other', data: { schoolId: 7 } } }), 403);
  assertError(await call('GET', `/v1/queues/${QR}`, { token: T.acc7 }), 403);
  assertError(await call('POST', `/v1/queues/${QR}/pause`, { token: T.acc7 }), 403);
  assertError(await call('POST', `/v1/queues/${QN}/jobs`, { token: T.acc7, body: { name: 'echo', data: { schoolId: 7 } } }), 403);
  // any other role: nothing.
  assertError(await call('GET', `/v1/queues/${QR}/jobs/${a.json.id}`, { token: T.teacher }), 403);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.teacher, body: feeJob }), 403);
});

test('tenant scoping: another school\'s job is 404, enqueueing for it is 403', async () => {
  const mine = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.acc7,
    body: { name: 'generate-fees', data: { schoolId: 7, period: '2026-02', dueDate: '2026-05-01' } } });
  assert.equal(mine.status, 201, mine.text);
  const theirs = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.acc8,
    body: { name: 'generate-fees', data: { schoolId: 8, period: '2026-02', dueDate: '2026-05-01' } } });
  assert.equal(theirs.status, 201, theirs.text);
  assertError(await call('GET', `/v1/queues/${QR}/jobs/${theirs.json.id}`, { token: T.acc7 }), 404, 'job_not_found');
  assertError(await call('GET', `/v1/queues/${QR}/jobs/${theirs.json.id}/wait?timeout=0`, { token: T.acc7 }), 404);
  const own = await call('GET', `/v1/queues/${QR}/jobs/${mine.json.id}`, { token: T.acc7 });
  assert.equal(own.json.data.schoolId, 7);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.acc7,
    body: { name: 'generate-fees', data: { schoolId: 8, period: '2026-02', dueDate: '2026-05-01' } } }), 403);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.acc7,
    body: { name: 'generate-fees', data: { period: '2026-02', dueDate: '2026-05-01' } } }), 403);
  // A token without school_id (backend) reads every school.
  assert.equal((await call('GET', `/v1/queues/${QR}/jobs/${theirs.json.id}`, { token: T.backend })).status, 200);
});

test('validation: 422 lists every problem, 400 malformed JSON, 413 over 1 MiB', async () => {
  const r = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend,
    body: { name: 'generate-fees', data: { schoolId: 0, period: '2026-13', dueDate: '2026-02-30', feeStructureIds: ['x'], extra: 1 } } });
  assertError(r, 422, 'invalid_job');
  const paths = r.json.error.details.map(d => d.path).sort();
  assert.deepEqual(paths, ['/data/dueDate', '/data/extra', '/data/feeStructureIds/0', '/data/period', '/data/schoolId']);
  const missing = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, body: { name: 'generate-fees', data: {} } });
  assert.deepEqual(missing.json.error.details.map(d => d.path).sort(), ['/data/dueDate', '/data/period', '/data/schoolId']);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, body: { name: 'nope', data: {} } }), 422);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, body: { data: {} } }), 422);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, body: { name: 'other', data: {}, opts: { attempts: 'x' } } }), 422);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, raw: '{"name": "other", ' }), 400, 'malformed_json');
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, raw: '' }), 400);
  const big = JSON.stringify({ name: 'other', data: { blob: 'x'.repeat(1024 * 1024 + 10) } });
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, raw: big }), 413, 'payload_too_large');
  // A declared length far over the limit is refused before any body is sent.
  const early = await new Promise((resolve, reject) => {
    const sock = net.connect(S.port, '127.0.0.1');
    let got = '';
    sock.on('data', d => { got += d; });
    sock.on('close', () => resolve(got));
    sock.on('error', reject);
    sock.write(`POST /v1/queues/${QR}/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${64 * 1024 * 1024}\r\n\r\n`);
  });
  assert.match(early, /^HTTP\/1\.1 413/);
  // Chunked (no Content-Length) is counted too.
  const chunked = await fetch(`${S.base}/v1/queues/${QR}/jobs`, { method: 'POST', duplex: 'half',
    headers: { authorization: `Bearer ${T.backend}`, 'content-type': 'application/json' },
    body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(big)); c.close(); } }) });
  assert.equal(chunked.status, 413);
});

test('idempotency key: the same key returns the same job and adds nothing', async () => {
  const r1 = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, headers: { 'idempotency-key': 'k-1' },
    body: { name: 'other', data: { n: 1 } } });
  assert.equal(r1.status, 201, r1.text);
  const before = (await call('GET', `/v1/queues/${QR}`, { token: T.backend })).json.counts.waiting;
  const r2 = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, headers: { 'idempotency-key': 'k-1' },
    body: { name: 'other', data: { n: 1 } } });
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json.id, r1.json.id);
  assert.equal((await call('GET', `/v1/queues/${QR}`, { token: T.backend })).json.counts.waiting, before);
  const r3 = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, headers: { 'idempotency-key': 'k-2' },
    body: { name: 'other', data: { n: 1 } } });
  assert.equal(r3.status, 201);
  assert.notEqual(r3.json.id, r1.json.id);
});

test('bulk: all or nothing, at most 1000', async () => {
  const counts = async () => (await call('GET', `/v1/queues/${QR}`, { token: T.admin })).json.counts.waiting;
  const c0 = await counts();
  const jobs = Array.from({ length: 3 }, (_, i) => ({ name: 'generate-fees', data: { schoolId: 1 + i, period: '2026-01', dueDate: '2026-03-01' } }));
  const ok = await call('POST', `/v1/queues/${QR}/jobs/bulk`, { token: T.backend, body: jobs });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.json.ids.length, 3);
  assert.equal(await counts(), c0 + 3);
  const bad = [...jobs, { name: 'generate-fees', data: { schoolId: 1, period: '2026-01' } }];
  const r = await call('POST', `/v1/queues/${QR}/jobs/bulk`, { token: T.backend, body: bad });
  assertError(r, 422);
  assert.deepEqual(r.json.error.details.map(d => d.path), ['/3/data/dueDate']);
  assert.equal(await counts(), c0 + 3);
  const many = Array.from({ length: 1001 }, () => ({ name: 'other', data: {} }));
  assertError(await call('POST', `/v1/queues/${QR}/jobs/bulk`, { token: T.backend, body: many }), 422);
  const max = await call('POST', `/v1/queues/${QR}/jobs/bulk`, { token: T.backend, body: many.slice(1) });
  assert.equal(max.status, 201);
  assert.equal(max.json.ids.length, 1000);
  // Accountant of school 7: one job of school 8 refuses the whole batch.
  assertError(await call('POST', `/v1/queues/${QR}/jobs/bulk`, { token: T.acc7,
    body: [{ ...jobs[0], data: { ...jobs[0].data, schoolId: 7 } }, { ...jobs[0], data: { ...jobs[0].data, schoolId: 8 } }] }), 403);
});

test('our worker runs HTTP jobs; long-poll answers on completion; retry and delete', async () => {
  const w = await h.startWorker({ queue: Q, concurrency: 2 });
  const add = await call('POST', `/v1/queues/${Q}/jobs`, { token: T.backend, body: { name: 'sleep', data: { ms: 400 } } });
  assert.equal(add.status, 201, add.text);
  assert.equal(add.json.state, 'waiting');
  const t0 = Date.now();
  const r = await call('GET', `/v1/queues/${Q}/jobs/${add.json.id}/wait?timeout=20`, { token: T.backend });
  assert.equal(r.status, 200);
  assert.equal(r.json.state, 'completed');
  assert.equal(r.json.finished, true);
  assert.deepEqual(r.json.returnvalue, { slept: 400 });
  assert.ok(Date.now() - t0 < 5000, 'answered at completion, not at the timeout');
  // A wait that times out answers with the current state.
  const slow = await call('POST', `/v1/queues/${Q}/jobs`, { token: T.backend, body: { name: 'sleep', data: { ms: 3000 } } });
  const t1 = Date.now();
  const tw = await call('GET', `/v1/queues/${Q}/jobs/${slow.json.id}/wait?timeout=0.5`, { token: T.backend });
  assert.equal(tw.json.finished, false);
  assert.ok(Date.now() - t1 < 2500);
  assertError(await call('GET', `/v1/queues/${Q}/jobs/${slow.json.id}/wait?timeout=61`, { token: T.backend }), 400);
  // Failure, retry, then delete.
  const f = await call('POST', `/v1/queues/${Q}/jobs`, { token: T.backend, body: { name: 'fail', data: { message: 'boom' } } });
  const fw = await call('GET', `/v1/queues/${Q}/jobs/${f.json.id}/wait?timeout=10`, { token: T.backend });
  assert.equal(fw.json.state, 'failed');
  const rt = await call('POST', `/v1/queues/${Q}/jobs/${f.json.id}/retry`, { token: T.admin });
  assert.equal(rt.status, 200, rt.text);
  await h.waitFor(async () => (await call('GET', `/v1/queues/${Q}/jobs/${f.json.id}`, { token: T.admin })).json.attemptsMade === 2,
    { message: 'the retried job to fail again' });
  const del = await call('DELETE', `/v1/queues/${Q}/jobs/${f.json.id}`, { token: T.admin });
  assert.equal(del.status, 200, del.text);
  assertError(await call('GET', `/v1/queues/${Q}/jobs/${f.json.id}`, { token: T.admin }), 404);
  assertError(await call('DELETE', `/v1/queues/${Q}/jobs/${f.json.id}`, { token: T.admin }), 404);
  assertError(await call('POST', `/v1/queues/${Q}/jobs/${slow.json.id}/retry`, { token: T.admin }), 409, 'conflict');
  // Pause and resume show in the queue view.
  await call('POST', `/v1/queues/${Q}/pause`, { token: T.admin });
  assert.equal((await call('GET', `/v1/queues/${Q}`, { token: T.admin })).json.paused, true);
  await call('POST', `/v1/queues/${Q}/resume`, { token: T.admin });
  assert.equal((await call('GET', `/v1/queues/${Q}`, { token: T.admin })).json.paused, false);
  w.child.kill('SIGTERM');
});

test('a Node bull worker runs HTTP jobs', async () => {
  await h.startNodeWorker({ queue: QN, handlers: ['echo'] });
  const add = await call('POST', `/v1/queues/${QN}/jobs`, { token: T.backend, body: { name: 'echo', data: { x: 42 } } });
  assert.equal(add.status, 201, add.text);
  const r = await call('GET', `/v1/queues/${QN}/jobs/${add.json.id}/wait?timeout=20`, { token: T.backend });
  assert.equal(r.json.state, 'completed');
  assert.deepEqual(r.json.returnvalue, { x: 42, by: 'node' });
});

test('rate limits per subject and per address answer 429 with Retry-After', async () => {
  // A prefix of its own: the per-address counter (127.0.0.1) must not carry
  // requests of another run in the same minute.
  const s = await startServer({ args: ['--rate-subject', '5', '--rate-ip', '8'], prefix: `rl${process.pid}${Date.now()}` });
  const sub = jwt({ sub: `rl-${Date.now()}`, role: 'backend' });
  const st = [];
  for (let i = 0; i < 7; i++) st.push((await call('GET', `/v1/queues/${QR}`, { token: sub, server: s })).status);
  assert.deepEqual(st, [200, 200, 200, 200, 200, 429, 429]);
  const r = await call('GET', `/v1/queues/${QR}`, { token: sub, server: s });
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  // Another subject from the same address: the address limit (8) bites.
  const other = jwt({ sub: `rl2-${Date.now()}`, role: 'backend' });
  const st2 = [];
  for (let i = 0; i < 3; i++) st2.push((await call('GET', `/v1/queues/${QR}`, { token: other, server: s })).status);
  assert.ok(st2.includes(429), st2.join(','));
  s.child.kill('SIGTERM');
});

test('enqueue rate limits ride in the add: refused adds add nothing; refused requests count too', async () => {
  const prefix = `rla${process.pid}${Date.now()}`;
  const s = await startServer({ args: ['--rate-subject', '3', '--rate-ip', '0'], prefix });
  const sub = jwt({ sub: `rla-${Date.now()}`, role: 'backend' });
  const add = body => call('POST', `/v1/queues/${QR}/jobs`, { token: sub, server: s, body });
  assert.equal((await add({ name: 'other', data: {} })).status, 201);
  // Answered before the add (422, 400): counted all the same.
  assertError(await add({ name: 'nope', data: {} }), 422);
  assert.equal((await add({ name: 'other', data: {} })).status, 201);
  const r = await add({ name: 'other', data: {} });
  assertError(r, 429, 'rate_limited');
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  assertError(await call('POST', `/v1/queues/${QR}/jobs`, { token: sub, server: s, raw: '{bad' }), 429, 'rate_limited');
  const bulk = await call('POST', `/v1/queues/${QR}/jobs/bulk`, { token: sub, server: s, body: [{ name: 'other', data: {} }] });
  assertError(bulk, 429, 'rate_limited');
  const rc = h.redis();
  assert.equal(await rc.llen(`${prefix}:${QR}:wait`), 2, 'only the two allowed adds added jobs');
  s.child.kill('SIGTERM');
});

test('behind a trusted proxy, X-Forwarded-For names the client for rate limits and the log', async () => {
  const s = await startServer({ args: ['--rate-subject', '0', '--rate-ip', '2', '--trusted-proxies', '127.0.0.1/32'],
    prefix: `xff${process.pid}${Date.now()}` });
  const get = ip => call('GET', `/v1/queues/${QR}`, { token: T.backend, server: s, headers: { 'x-forwarded-for': ip } });
  const a = [];
  for (let i = 0; i < 3; i++) a.push((await get('1.2.3.4, 203.0.113.7')).status);
  assert.deepEqual(a, [200, 200, 429], 'the client 203.0.113.7 is limited, whatever it wrote on its left');
  assert.equal((await get('203.0.113.8')).status, 200, 'another client has its own counter');
  assert.match(s.out, /"client":"203\.0\.113\.0\/24"/);
  s.child.kill('SIGTERM');
  // Without --trusted-proxies the header is ignored: every request is 127.0.0.1's.
  const plain = await startServer({ args: ['--rate-subject', '0', '--rate-ip', '2'], prefix: `xfn${process.pid}${Date.now()}` });
  const b = [];
  for (const ip of ['203.0.113.7', '203.0.113.8', '203.0.113.9'])
    b.push((await call('GET', `/v1/queues/${QR}`, { token: T.backend, server: plain, headers: { 'x-forwarded-for': ip } })).status);
  assert.deepEqual(b, [200, 200, 429]);
  assert.doesNotMatch(plain.out, /203\.0\.113/);
  plain.child.kill('SIGTERM');
});

// The access-log lines (parsed) of a server.
function accessLog(s) {
  return s.out.split('\n').filter(l => l.includes('"event":"http.request"')).map(l => JSON.parse(l));
}
// The addresses of the server's start-up line ("bound"), sorted. The log is
// written by its own thread, so the line can follow the first answer: wait
// for it (up to 10 s, valgrind included).
async function boundOf(s) {
  const find = () => s.out.split('\n').find(l => l.includes('"event":"http.listening"'));
  const line = await h.waitFor(find, { message: 'the http.listening log line' });
  return JSON.parse(line).bound.split(',').sort();
}
// Connects to host:port: 'open', or the error code (ECONNREFUSED...).
function tcpProbe(host, port) {
  return new Promise(resolve => {
    const sock = net.connect({ host, port });
    sock.on('connect', () => { sock.destroy(); resolve('open'); });
    sock.on('error', e => resolve(e.code));
  });
}

test('IPv6: serve on [::1]:PORT answers IPv6 clients only; the log masks them to /48; --rate-ip counts them', async () => {
  const prefix = `v6${process.pid}${Date.now()}`;
  const s = await startServer({ host: '[::1]', args: ['--rate-subject', '0', '--rate-ip', '3'], prefix });
  assert.deepEqual(await boundOf(s), [`[::1]:${s.port}`]);
  assert.equal(await tcpProbe('127.0.0.1', s.port), 'ECONNREFUSED', 'an IPv6 address listens on IPv6 only');
  const st = [];
  for (let i = 0; i < 4; i++) st.push((await call('GET', `/v1/queues/${QR}`, { token: T.backend, server: s })).status);
  assert.deepEqual(st, [200, 200, 200, 429]);
  const keys = await h.redis().keys(`${prefix}:erpq:rl:ip:*`);
  assert.ok(keys.length === 1 && keys[0].startsWith(`${prefix}:erpq:rl:ip:::1:`), keys.join(','));
  await h.waitFor(() => accessLog(s).length >= 5, { message: 'five access-log lines' });
  const clients = new Set(accessLog(s).map(o => o.client));
  assert.deepEqual([...clients], ['::/48'], 'every request logged under the network of ::1, never the address');
  s.child.kill('SIGTERM');
});

test('IPv6: --per-ip-connections holds for an IPv6 client', async () => {
  // Started without a fetch, so that no pooled keep-alive connection of
  // this process counts against ::1.
  const e = h.env();
  const port = await h.freePort();
  const child = h.spawnBin(path.join(e.binDir, 'erpq-producer'), ['--redis', e.redisUrl, 'serve', '--listen', `[::1]:${port}`,
    '--roles', path.join(tmp, 'roles.json'), '--per-ip-connections', '1'],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ERPQ_JWT_SECRET: SECRET } });
  const s = { child, port, out: '' };
  servers.push(s);
  child.stdout.on('data', d => { s.out += d; });
  child.stderr.on('data', d => { s.out += d; });
  await h.waitFor(() => s.out.includes('"event":"http.listening"'), { timeout: h.wrapped ? 60000 : 10000, message: 'serve to listen' });
  // ask: one request on a fresh connection; resolves with what came back
  // before the server closed it ('' when it was refused).
  const ask = () => new Promise(resolve => {
    const sock = net.connect({ host: '::1', port });
    let got = '';
    sock.on('data', d => { got += d; sock.end(); });
    sock.on('error', () => {});
    sock.on('close', () => resolve(got));
    sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  });
  const held = net.connect({ host: '::1', port });
  await new Promise(r => held.on('connect', r));
  held.write('GET /healthz HTTP/1.1\r\n'); // Headers not finished: the connection stays open.
  await h.sleep(200);
  assert.equal(await ask(), '', 'a second connection from ::1 is refused');
  held.destroy();
  await h.waitFor(async () => /^HTTP\/1\.1 200/.test(await ask()), { message: 'the address to be served again' });
  child.kill('SIGTERM');
});

test('IPv6: behind a trusted IPv6 proxy, X-Forwarded-For names IPv6 clients for rate limits and the log', async () => {
  const s = await startServer({ host: '[::1]', args: ['--rate-subject', '0', '--rate-ip', '2', '--trusted-proxies', '10.0.0.0/8, ::1'],
    prefix: `xff6${process.pid}${Date.now()}` });
  const get = ip => call('GET', `/v1/queues/${QR}`, { token: T.backend, server: s, headers: { 'x-forwarded-for': ip } });
  const a = [];
  for (let i = 0; i < 3; i++) a.push((await get('2001:db8:1:2::5')).status);
  assert.deepEqual(a, [200, 200, 429]);
  assert.equal((await get('2001:db8:1:3::5')).status, 200, 'another address of the same /48 has its own counter');
  assert.equal((await get('203.0.113.7, 2001:db8:1:2::5')).status, 429, 'what the client wrote on the left is ignored');
  await h.waitFor(() => accessLog(s).length >= 6, { message: 'six access-log lines' });
  const v1 = accessLog(s).filter(o => o.route.startsWith('/v1/'));
  assert.equal(v1.length, 5);
  assert.deepEqual([...new Set(v1.map(o => o.client))], ['2001:db8:1::/48'], 'the proxy\'s client, masked to its /48');
  assert.doesNotMatch(s.out, /2001:db8:1:2::5/);
  s.child.kill('SIGTERM');
});

test('[::]:PORT is IPv6 only; *:PORT takes IPv4 and IPv6 on one socket and logs IPv4 clients as IPv4 networks', async () => {
  const v6 = await startServer({ host: '[::]', base: '[::1]' });
  assert.deepEqual(await boundOf(v6), [`[::]:${v6.port}`]);
  assert.equal((await call('GET', '/healthz', { server: v6 })).status, 200);
  assert.equal(await tcpProbe('127.0.0.1', v6.port), 'ECONNREFUSED', 'IPV6_V6ONLY is set');
  v6.child.kill('SIGTERM');
  const any = await startServer({ host: '*', base: '127.0.0.1' });
  assert.deepEqual(await boundOf(any), [`[::]:${any.port}`]);
  assert.equal((await fetch(`http://127.0.0.1:${any.port}/healthz`)).status, 200);
  assert.equal((await fetch(`http://[::1]:${any.port}/healthz`)).status, 200);
  await h.waitFor(() => new Set(accessLog(any).map(o => o.client)).size >= 2, { message: 'both clients logged' });
  assert.deepEqual([...new Set(accessLog(any).map(o => o.client))].sort(), ['127.0.0.0/24', '::/48']);
  any.child.kill('SIGTERM');
});

test('a host name: serve on localhost:PORT listens on every address localhost resolves to', async () => {
  // What the system resolver says (Node asks getaddrinfo too).
  const addrs = [...new Set((await dns.lookup('localhost', { all: true, verbatim: true }))
    .map(a => (a.family === 6 ? `[${a.address}]` : a.address)))];
  assert.ok(addrs.length >= 1);
  const s = await startServer({ host: 'localhost', base: addrs[0] });
  assert.deepEqual(await boundOf(s), addrs.map(a => `${a}:${s.port}`).sort());
  for (const a of addrs) assert.equal((await fetch(`http://${a}:${s.port}/healthz`)).status, 200, a);
  s.child.kill('SIGTERM');
});

test('a bad --listen fails at start with a clear message and exit code 2; an address not on this host exits 4', async () => {
  const e = h.env();
  const port = await h.freePort();
  const run = listen => new Promise(resolve => {
    const child = h.spawnBin(path.join(e.binDir, 'erpq-producer'), ['--redis', e.redisUrl, 'serve', '--listen', listen,
      '--roles', path.join(tmp, 'roles.json')],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ERPQ_JWT_SECRET: SECRET } });
    let out = '';
    let err = '';
    child.stdout.on('data', d => { out += d; });
    child.stderr.on('data', d => { err += d; });
    const timer = setTimeout(() => child.kill('SIGTERM'), 30000);
    child.on('exit', code => { clearTimeout(timer); resolve({ code, out, err }); });
  });
  const bad = [
    [`nonexistent.invalid:${port}`, /cannot resolve host 'nonexistent\.invalid'/],
    [`::1:${port}`, /an IPv6 address goes in brackets, as in \[::1\]:8080/],
    [`1.2.3:${port}`, /'1\.2\.3' is not an IPv4 address/],
    [`[nope]:${port}`, /'nope' is not an IPv6 address/],
    ['[::1]', /must be HOST:PORT or \[IPV6\]:PORT/],
    ['localhost', /must be HOST:PORT/],
    ['localhost:65536', /the port of 'localhost:65536' must be 0 to 65535/],
  ];
  for (const [listen, msg] of bad) {
    const r = await run(listen);
    assert.equal(r.code, 2, `${listen}: exit ${r.code} ${r.err}`);
    assert.match(r.err, /^erpq-producer serve: --listen/, listen);
    assert.match(r.err, msg, listen);
    assert.equal(r.err.trim().split('\n').length, 1, `${listen}: one line`);
    assert.doesNotMatch(r.out, /http\.listening/);
  }
  const r = await run(`[2001:db8::1]:${port}`);
  assert.equal(r.code, 4, r.err);
  assert.match(r.err, /cannot listen on \[2001:db8::1\]:\d+: Cannot assign requested address/);
});

test('a slow client (one byte a second) does not hold up others and is timed out', async () => {
  const s = await startServer({ args: ['--body-timeout', '3', '--header-timeout', '3', '--client-timeout', '5', '--rate-subject', '0', '--rate-ip', '0'] });
  const body = JSON.stringify({ name: 'other', data: { n: 1 } });
  const sock = net.connect(s.port, '127.0.0.1');
  let answer = '';
  sock.on('data', d => { answer += d; });
  const closed = new Promise(r => sock.on('close', r));
  sock.write(`POST /v1/queues/${QR}/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.backend}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  let i = 0;
  const timer = setInterval(() => { if (i < body.length && !sock.destroyed) sock.write(body[i++]); }, 1000);
  // Meanwhile others are served at once.
  for (let k = 0; k < 20; k++) {
    const t = Date.now();
    assert.equal((await call('GET', '/healthz', { server: s })).status, 200);
    assert.ok(Date.now() - t < 500);
  }
  const t0 = Date.now();
  await h.within(closed, 15000, 'the slow client to be cut off');
  clearInterval(timer);
  // Cut off at the body deadline (3 s), long before its ~30 bytes arrive.
  assert.ok(i < 10, `cut off after ${i} bytes`);
  assert.ok(answer === '' || /^HTTP\/1\.1 408/.test(answer), answer);
  assert.ok(Date.now() - t0 < 15000);
  await h.waitFor(() => s.out.includes('"status":408'), { message: 'the 408 in the access log' });
  // Headers sent one byte a second are cut off at the header deadline.
  const slowHdr = net.connect(s.port, '127.0.0.1');
  const hdr = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(40)}\r\n\r\n`;
  let j = 0;
  let hdrAnswer = '';
  slowHdr.on('data', d => { hdrAnswer += d; });
  const hdrTimer = setInterval(() => { if (j < hdr.length && !slowHdr.destroyed) slowHdr.write(hdr[j++]); }, 1000);
  await h.within(new Promise(r => slowHdr.on('close', r)), 15000, 'the slow-header client to be cut off');
  clearInterval(hdrTimer);
  assert.ok(j < 10, `cut off after ${j} header bytes`);
  assert.equal(hdrAnswer, '');
  // An idle, half-open connection is closed too.
  const idle = net.connect(s.port, '127.0.0.1');
  idle.write('GET /healthz HTTP/1.1\r\n');
  await h.within(new Promise(r => idle.on('close', r)), 15000, 'the idle client to be cut off');
  s.child.kill('SIGTERM');
});

test('Redis down: /v1 answers 503 with Retry-After, the server stays up and recovers', async () => {
  const redis = await h.startRedis();
  const s = await startServer({ redisUrl: redis.url, args: ['--redis-timeout', '300'] });
  const ok = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: {} } });
  assert.equal(ok.status, 201, ok.text);
  await redis.shutdown();
  const r = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: {} } });
  assertError(r, 503, 'redis_unavailable');
  assert.equal(r.headers.get('retry-after'), '1');
  assert.equal((await call('GET', '/readyz', { server: s })).status, 503);
  assert.equal((await call('GET', '/healthz', { server: s })).status, 200);
  await redis.start();
  await h.waitFor(async () => (await call('GET', `/v1/queues/${QR}`, { token: T.backend, server: s })).status === 200,
    { timeout: 10000, message: 'the API to reconnect' });
  s.child.kill('SIGTERM');
});

test('Redis frozen: calls in flight answer 503 after --redis-timeout, and the server recovers', async () => {
  const redis = await h.startRedis();
  const s = await startServer({ redisUrl: redis.url, args: ['--redis-timeout', '300'] });
  assert.equal((await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: {} } })).status, 201);
  redis.proc.signal('SIGSTOP'); // The connection stays open; nothing answers.
  try {
    const t0 = Date.now();
    const [a, b, ready] = await Promise.all([
      call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: {} } }),
      call('GET', `/v1/queues/${QR}`, { token: T.backend, server: s }),
      call('GET', '/readyz', { server: s })]);
    const took = Date.now() - t0;
    assertError(a, 503, 'redis_unavailable');
    assertError(b, 503, 'redis_unavailable');
    assert.equal(ready.status, 503);
    assert.equal(a.headers.get('retry-after'), '1');
    assert.ok(took >= 250 && took < 3000, `answered after the 300 ms timeout, not before or much later (${took} ms)`);
    assert.equal((await call('GET', '/healthz', { server: s })).status, 200);
  } finally {
    redis.proc.signal('SIGCONT');
  }
  await h.waitFor(async () => (await call('GET', `/v1/queues/${QR}`, { token: T.backend, server: s })).status === 200,
    { timeout: 10000, message: 'the API to reconnect' });
  assert.match(s.out, /"event":"http.redis_timeout"/);
  s.child.kill('SIGTERM');
});

test('Redis unreachable mid-connect (SYNs dropped): calls answer 503 after --redis-timeout, no crash', async () => {
  // A listener with a full backlog that never accepts: connects to it hang,
  // as to a host that drops packets.
  const port = await h.freePort();
  const hang = spawn('/usr/bin/python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", ${port})); s.listen(0)
fill = []
for i in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", ${port}))
    except BlockingIOError: pass
    fill.append(c)
print("ready", flush=True)
time.sleep(120)
`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve, reject) => {
      hang.stdout.on('data', d => { if (String(d).includes('ready')) resolve(); });
      hang.on('exit', code => reject(new Error(`listener exited ${code}`)));
    });
    const s = await startServer({ redisUrl: `redis://127.0.0.1:${port}/0`, args: ['--redis-timeout', '300'] });
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      const r = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: {} } });
      assertError(r, 503, 'redis_unavailable');
      assert.ok(Date.now() - t0 < 3000, 'answered within the timeout (or at once while down)');
    }
    assert.equal((await call('GET', '/healthz', { server: s })).status, 200);
    const exited = new Promise(resolve => s.child.on('exit', code => resolve(code)));
    s.child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    hang.kill('SIGKILL');
  }
});

test('several event loops: 300 requests at once each get their own job; long-polls on both loops answer', async () => {
  const s = await startServer({ args: ['--threads', '2', '--rate-subject', '0', '--rate-ip', '0'] });
  const rc = h.redis();
  const before = await h.counts(rc, QR);
  const rs = await Promise.all(Array.from({ length: 300 }, (_, i) =>
    call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: { i } } })));
  for (const r of rs) assert.equal(r.status, 201, r.text);
  const ids = new Set(rs.map(r => r.json.id));
  assert.equal(ids.size, 300, 'distinct ids');
  const after = await h.counts(rc, QR);
  assert.equal(after.wait - before.wait, 300);
  // Six long-polls over separate connections (spread over both loops):
  // each answers when our worker completes its job.
  const w = await h.startWorker({ queue: Q, concurrency: 6 });
  const adds = await Promise.all(Array.from({ length: 6 }, (_, i) =>
    call('POST', `/v1/queues/${Q}/jobs`, { token: T.backend, server: s, body: { name: 'sleep', data: { ms: 300 + 50 * i } } })));
  const waits = await Promise.all(adds.map(a =>
    call('GET', `/v1/queues/${Q}/jobs/${a.json.id}/wait?timeout=20`, { token: T.backend, server: s })));
  for (const r of waits) {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.state, 'completed');
    assert.equal(r.json.finished, true);
  }
  w.child.kill('SIGTERM');
  s.child.kill('SIGTERM');
});

test('SIGTERM: a pending long-poll answers with the state it sees, and the server exits 0', async () => {
  const s = await startServer();
  const add = await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, server: s, body: { name: 'other', data: {} } });
  assert.equal(add.status, 201, add.text);
  const pending = call('GET', `/v1/queues/${QR}/jobs/${add.json.id}/wait?timeout=30`, { token: T.backend, server: s });
  await h.sleep(300);
  const t0 = Date.now();
  const exited = new Promise(resolve => s.child.on('exit', (code, sig) => resolve({ code, sig })));
  s.child.kill('SIGTERM');
  const r = await pending;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'waiting');
  assert.equal(r.json.finished, false);
  assert.ok(Date.now() - t0 < 3000, 'answered at the stop, not at its timeout');
  assert.deepEqual(await exited, { code: 0, sig: null });
  assert.match(s.out, /"event":"http.stopped"/);
});

test('the access log has no token and no job data', async () => {
  const secretData = 'Pupil-Name-Do-Not-Log';
  await call('POST', `/v1/queues/${QR}/jobs`, { token: T.backend, body: { name: 'other', data: { who: secretData } } });
  await h.waitFor(() => S.out.includes('"route":"/v1/queues/{queue}/jobs"'));
  assert.ok(!S.out.includes(secretData));
  assert.ok(!S.out.includes(T.backend.split('.')[2]));
  const line = S.out.split('\n').find(l => l.includes('"event":"http.request"'));
  const o = JSON.parse(line);
  for (const k of ['ts', 'method', 'route', 'status', 'ms', 'client', 'path']) assert.ok(k in o, k);
  assert.equal(o.client, '127.0.0.0/24', 'the address is masked to its network');
  assert.ok(!line.includes('127.0.0.1'));
});

test('the worker applies the same schemas: bad data added by Node bull fails at once, listing every problem', async () => {
  const qv = h.qname('http-schema');
  await h.startWorker({ queue: qv });
  const q = h.queue(qv);
  // diag's fail job: {message: string, times: integer >= 0} (jobs/diag/schemas/fail.json).
  const job = await q.add('fail', { message: 5, times: -1 }, { attempts: 3 });
  const err = await job.finished().then(() => null, e => e);
  assert.ok(err, 'the job must fail');
  for (const p of ['/data/message', '/data/times']) assert.ok(err.message.includes(p), err.message);
  assert.match(err.message, /^job data does not match its schema/);
  const j = await q.getJob(job.id);
  assert.equal(j.attemptsMade, 1, 'discarded: no retry');
  // Valid data passes the check and reaches the handler.
  const good = await q.add('fail', { message: 'not this time', times: 0 });
  assert.deepEqual(await good.finished(), { ok: true, attempts: 1 });
  // Schemas belong to families: a fee job on a diag queue is not checked
  // against the fee schema; it meets bull's missing-handler failure.
  const other = await q.add('generate-fees', { schoolId: 'x' });
  const e3 = await other.finished().then(() => null, e => e);
  assert.equal(e3.message, 'Missing process handler for job type generate-fees');
});
