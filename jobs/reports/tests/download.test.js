'use strict';
// Report downloads through the HTTP API, as an accountant's browser does
// them: erpq-producer serve and erpq-worker (the reports family) run with
// the same storage settings; a report added through the API is polled to
// completion, then GET /v1/queues/reports/jobs/{id}/download answers 302 to
// a fresh link and the file behind it is the one the result describes.
//   - S3 (the test s3rver): the link is a presigned GET; another school's
//     token gets 404, a job not completed 409 with its state, a missing
//     job 404, an object deleted from the bucket 410, no token 401;
//   - a local directory: the link is the API's own /v1/files/{key}, which
//     streams the file; a tampered signature, key or name is 403, a link
//     past its lifetime (--report-link-ttl 2) is 410;
//   - an API started without storage settings answers 503.
// Tokens come from `erpq-producer token`, as the README shows.
//
// Needs ERPQ_TEST_MYSQL_URL, ERPQ_TEST_REDIS_URL and ERPQ_TEST_S3_* (fails,
// never skips, without them). Registered from jobs/reports/CMakeLists.txt.
const { test, before, after } = require('node:test');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const h = require(path.join(process.env.ERPQ_SOURCE_DIR || path.join(__dirname, '../../..'),
  'tests/interop/lib/harness'));

const { assert } = h;
const SECRET = crypto.randomBytes(32).toString('hex');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'erpq-dl-'));
let db; let my; let e;
let s3Job; // {prefix, id} of the S3 test's completed report
const servers = [];

function mariadb(args) {
  return execFileSync('mariadb', ['--no-defaults', '-h', my.hostname, '-P', my.port || '3306',
    '-u', decodeURIComponent(my.username), `-p${decodeURIComponent(my.password)}`, ...args],
  { encoding: 'utf8' }).trim();
}

function s3env() {
  return {
    ERPQ_S3_BUCKET: process.env.ERPQ_TEST_S3_BUCKET,
    ERPQ_S3_ENDPOINT: process.env.ERPQ_TEST_S3_URL,
    ERPQ_S3_REGION: process.env.ERPQ_TEST_S3_REGION || 'us-east-1',
    ERPQ_S3_ACCESS_KEY_ID: process.env.ERPQ_TEST_S3_ACCESS_KEY,
    ERPQ_S3_SECRET_ACCESS_KEY: process.env.ERPQ_TEST_S3_SECRET_KEY,
  };
}

// The environment of one stack: the test's database, the JWT secret and
// the given storage settings; nothing inherited about storage.
function stackEnv(storage) {
  const env = { ...process.env, ERPQ_MYSQL_URL: process.env.ERPQ_MYSQL_URL, ERPQ_JWT_SECRET: SECRET, ...storage };
  for (const v of Object.keys(env)) {
    if ((v.startsWith('ERPQ_S3_') || v.startsWith('ERPQ_STORAGE_') || v === 'ERPQ_PUBLIC_URL') && !(v in storage)) delete env[v];
  }
  return env;
}

async function startApi({ prefix, env, port, args = [] }) {
  const child = h.spawnBin(path.join(e.binDir, 'erpq-producer'), ['--redis', e.redisUrl, '--prefix', prefix, 'serve',
    '--listen', `127.0.0.1:${port}`, '--rate-ip', '0', '--rate-subject', '0', ...args],
  { stdio: ['ignore', 'pipe', 'pipe'], env });
  const s = { child, base: `http://127.0.0.1:${port}`, out: '' };
  child.stdout.on('data', d => { s.out += d; });
  child.stderr.on('data', d => { s.out += d; });
  servers.push(s);
  await h.waitFor(async () => {
    try { return (await fetch(`${s.base}/healthz`)).status === 200; } catch { return false; }
  }, { timeout: h.wrapped ? 60000 : 10000, message: () => `serve to answer:\n${s.out}` });
  return s;
}

async function startWorker({ prefix, env }) {
  const argv = ['--redis', e.redisUrl, '--prefix', prefix, '--queue', 'reports:2', '--log-level', 'info'];
  const child = h.spawnBin(e.worker, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const w = { child, out: '' };
  child.stdout.on('data', d => { w.out += d; });
  child.stderr.on('data', d => { w.out += d; });
  servers.push(w);
  await h.waitFor(() => w.out.includes('"conn":"blocking:reports"') || child.exitCode !== null,
    { timeout: h.wrapped ? 60000 : 15000, message: () => `the worker to connect:\n${w.out}` });
  assert.equal(child.exitCode, null, w.out);
  return w;
}

function token(role, school) {
  const a = ['token', '--role', role, '--sub', `${role}-${school || 'all'}`];
  if (school) a.push('--school', String(school));
  return execFileSync(path.join(e.binDir, 'erpq-producer'), a, { env: { ...process.env, ERPQ_JWT_SECRET: SECRET } })
    .toString().trim();
}

async function call(s, method, p, { tok, body, redirect = 'manual' } = {}) {
  const headers = {};
  if (tok) headers.authorization = `Bearer ${tok}`;
  if (body) headers['content-type'] = 'application/json';
  const res = await fetch(`${s.base}${p}`, { method, headers, body: body && JSON.stringify(body), redirect });
  const buf = Buffer.from(await res.arrayBuffer());
  let json;
  try { json = JSON.parse(buf.toString()); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, buf, json, text: buf.toString() };
}

// Adds a report through the API and waits for it; returns the finished view.
async function report(s, tok, name, data) {
  const add = await call(s, 'POST', '/v1/queues/reports/jobs', { tok, body: { name, data } });
  assert.equal(add.status, 201, add.text);
  const id = add.json.id;
  const w = await call(s, 'GET', `/v1/queues/reports/jobs/${id}/wait?timeout=60`, { tok });
  assert.equal(w.status, 200, w.text);
  assert.equal(w.json.state, 'completed', w.text);
  return w.json;
}

function sha256(buf) { return crypto.createHash('sha256').update(buf).digest('hex'); }

const APRIL = { schoolId: 1, from: '2026-04-01', to: '2026-04-30', format: 'csv' };

before(async () => {
  e = h.env();
  for (const v of ['ERPQ_TEST_MYSQL_URL', 'ERPQ_TEST_S3_URL', 'ERPQ_TEST_S3_BUCKET',
    'ERPQ_TEST_S3_ACCESS_KEY', 'ERPQ_TEST_S3_SECRET_KEY']) {
    if (!process.env[v]) throw new Error(`${v} is not set (test servers of scripts/test)`);
  }
  my = new URL(process.env.ERPQ_TEST_MYSQL_URL);
  db = `erp_dl${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  mariadb(['-e', `CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`]);
  process.env.ERPQ_MYSQL_URL = `mysql://${my.username}:${my.password}@${my.hostname}:${my.port || 3306}/${db}`;
  execFileSync(e.worker, ['migrate']);
  execFileSync(e.worker, ['seed-demo', '--students', '60', '--schools', '2']);
});

after(async () => {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGTERM');
  await Promise.all(servers.map(s => (s.child.exitCode === null ? new Promise(r => s.child.once('exit', r)) : null)));
  await h.cleanup();
  if (db) mariadb(['-e', `DROP DATABASE \`${db}\``]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('S3: the download route redirects to a presigned link of the report; scoping and states', async () => {
  const prefix = `dls${process.pid}`;
  const env = stackEnv({ ...s3env(), ERPQ_REPORT_KEY_PREFIX: `reports-${prefix}` });
  await startWorker({ prefix, env });
  const api = await startApi({ prefix, env, port: await h.freePort() });
  const acc1 = token('accountant', 1);
  const done = await report(api, acc1, 'fee-collection', APRIL);
  const rv = done.returnvalue;
  assert.equal(rv.storage, 's3');
  s3Job = { prefix, id: done.id };

  const r = await call(api, 'GET', `/v1/queues/reports/jobs/${done.id}/download`, { tok: acc1 });
  assert.equal(r.status, 302, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const loc = r.headers.get('location');
  assert.ok(loc.startsWith(`${process.env.ERPQ_TEST_S3_URL}/`), loc);
  assert.match(loc, /X-Amz-Signature=[0-9a-f]{64}/);
  const file = await fetch(loc);
  assert.equal(file.status, 200);
  const buf = Buffer.from(await file.arrayBuffer());
  assert.equal(buf.length, rv.bytes);
  assert.equal(sha256(buf), rv.sha256);
  assert.match(file.headers.get('content-disposition') || '', /attachment; filename="fee-collection-/);

  // Another school's accountant: the same answer as a job that is not there.
  const other = await call(api, 'GET', `/v1/queues/reports/jobs/${done.id}/download`, { tok: token('accountant', 2) });
  assert.equal(other.status, 404, other.text);
  assert.equal(other.json.error.code, 'job_not_found');
  const missing = await call(api, 'GET', '/v1/queues/reports/jobs/999999/download', { tok: acc1 });
  assert.equal(missing.status, 404, missing.text);
  assert.equal((await call(api, 'GET', `/v1/queues/reports/jobs/${done.id}/download`)).status, 401);

  // Not completed yet: 409 with its state.
  const later = await call(api, 'POST', '/v1/queues/reports/jobs',
    { tok: acc1, body: { name: 'fee-collection', data: APRIL, opts: { delay: 600000 } } });
  assert.equal(later.status, 201, later.text);
  const early = await call(api, 'GET', `/v1/queues/reports/jobs/${later.json.id}/download`, { tok: acc1 });
  assert.equal(early.status, 409, early.text);
  assert.equal(early.json.error.state, 'delayed');

  // The object removed from the bucket (a lifecycle rule, an operator): 410.
  const del = await fetch(`${process.env.ERPQ_TEST_S3_URL}/${rv.bucket}/${rv.key}`, { method: 'DELETE' });
  assert.ok(del.status === 204 || del.status === 200, `s3rver DELETE: ${del.status}`);
  const gone = await call(api, 'GET', `/v1/queues/reports/jobs/${done.id}/download`, { tok: acc1 });
  assert.equal(gone.status, 410, gone.text);

  const m = await call(api, 'GET', '/metrics');
  assert.match(m.text, /erpq_http_requests_total\{route="\/v1\/queues\/\{queue\}\/jobs\/\{id\}\/download",method="GET",status="302"\} 1/);
  assert.match(m.text, /erpq_http_requests_total\{route="\/v1\/queues\/\{queue\}\/jobs\/\{id\}\/download",method="GET",status="410"\} 1/);
});

test('local directory: /v1/files streams the file; tampered links 403, expired links 410', async () => {
  const prefix = `dll${process.pid}`;
  const port = await h.freePort();
  const dir = path.join(tmp, 'files');
  const env = stackEnv({
    ERPQ_STORAGE_DIR: dir, ERPQ_STORAGE_SECRET: crypto.randomBytes(32).toString('hex'),
    ERPQ_PUBLIC_URL: `http://127.0.0.1:${port}`,
  });
  await startWorker({ prefix, env });
  const api = await startApi({ prefix, env, port, args: ['--report-link-ttl', '2'] });
  const acc1 = token('accountant', 1);
  const done = await report(api, acc1, 'fee-collection', APRIL);
  const rv = done.returnvalue;
  assert.equal(rv.storage, 'local');
  assert.ok(fs.existsSync(path.join(dir, rv.key)), `${rv.key} in ${dir}`);

  // The link in the result (signed by the worker) works as it is.
  const direct = await call(api, 'GET', new URL(rv.url).pathname + new URL(rv.url).search);
  assert.equal(direct.status, 200, direct.text);
  assert.equal(sha256(direct.buf), rv.sha256);

  const r = await call(api, 'GET', `/v1/queues/reports/jobs/${done.id}/download`, { tok: acc1 });
  assert.equal(r.status, 302, r.text);
  const loc = new URL(r.headers.get('location'));
  assert.equal(loc.origin, `http://127.0.0.1:${port}`);
  assert.ok(loc.pathname.startsWith('/v1/files/'), loc.href);
  const f = await call(api, 'GET', loc.pathname + loc.search);
  assert.equal(f.status, 200, f.text);
  assert.equal(f.buf.length, rv.bytes);
  assert.equal(sha256(f.buf), rv.sha256);
  assert.match(f.headers.get('content-type'), /^text\/csv/);
  assert.match(f.headers.get('content-disposition') || '', /attachment; filename="fee-collection-/);

  // Tampering with any part of the link: 403, nothing of the file.
  const sig = loc.searchParams.get('sig');
  const bad = new URL(loc.href);
  bad.searchParams.set('sig', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
  const t1 = await call(api, 'GET', bad.pathname + bad.search);
  assert.equal(t1.status, 403, t1.text);
  const renamed = new URL(loc.href);
  renamed.searchParams.set('name', 'other.csv');
  assert.equal((await call(api, 'GET', renamed.pathname + renamed.search)).status, 403);
  const longer = new URL(loc.href);
  longer.searchParams.set('exp', String(Number(loc.searchParams.get('exp')) + 3600));
  assert.equal((await call(api, 'GET', longer.pathname + longer.search)).status, 403);
  const otherKey = new URL(loc.href);
  otherKey.pathname = loc.pathname.replace(/fee-collection/, 'defaulters');
  assert.equal((await call(api, 'GET', otherKey.pathname + otherKey.search)).status, 403);

  // Past its lifetime (2 s here): 410.
  await h.sleep(3200);
  const old = await call(api, 'GET', loc.pathname + loc.search);
  assert.equal(old.status, 410, old.text);
  assert.equal(old.buf.includes(Buffer.from(rv.key)), false, 'the error names no storage key');
});

test('a stop while a download waits on a storage that never answers: 503 within the drain, exit 0 once the look gives up', async () => {
  assert.ok(s3Job, 'the S3 test ran first');
  // An "S3" that accepts connections and never says a word.
  const net = require('node:net');
  const socks = [];
  const hole = net.createServer(c => socks.push(c));
  await new Promise(r => hole.listen(0, '127.0.0.1', r));
  // Short S3 timeouts: the look cannot be cut off mid-request (it runs on
  // libuv's pool), so the process ends once it gives up.
  const env = stackEnv({ ...s3env(), ERPQ_S3_ENDPOINT: `http://127.0.0.1:${hole.address().port}`,
    ERPQ_S3_CONNECT_TIMEOUT: '1', ERPQ_S3_STALL_TIMEOUT: '2' });
  const api = await startApi({ prefix: s3Job.prefix, env, port: await h.freePort() });
  const pending = call(api, 'GET', `/v1/queues/reports/jobs/${s3Job.id}/download`, { tok: token('accountant', 1) });
  await h.waitFor(() => socks.length > 0, { message: 'the storage look to reach the silent S3' });
  const t0 = Date.now();
  const exited = new Promise(r => api.child.once('exit', code => r(code)));
  api.child.kill('SIGTERM');
  try {
    const r = await pending;
    const answered = Date.now() - t0;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'storage_unavailable');
    assert.ok(answered < 5000, `answered ${answered} ms after SIGTERM`);
    assert.equal(await exited, 0, api.out);
  } finally {
    for (const c of socks) c.destroy();
    hole.close();
  }
});

test('an API without report storage answers 503 on the download routes', async () => {
  const prefix = `dln${process.pid}`;
  const api = await startApi({ prefix, env: stackEnv({}), port: await h.freePort() });
  const r = await call(api, 'GET', '/v1/queues/reports/jobs/1/download', { tok: token('admin') });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.json.error.code, 'storage_unavailable');
  const f = await call(api, 'GET', '/v1/files/reports/1/2026-04/1-fee-collection.csv?exp=1&name=a.csv&sig=00');
  assert.equal(f.status, 503, f.text);
  assert.match(api.out, /"event":"http.downloads_off"/);
});
