'use strict';
// One timed measurement of the noop benchmark (bench/queue-noop.sh runs it).
// Expects the queue to hold JOBS waiting `noop` jobs (bench/lib/enqueue.js).
//
// Usage: node measure.js REDIS_URL QUEUE JOBS KIND CONCURRENCY
//   KIND erpq: runs $ERPQ_WORKER --redis URL --diag-queue QUEUE:C --log-level warn
//   KIND node: runs node bench/lib/node-worker.js URL QUEUE C
// Env: ERPQ_WORKER (path, for erpq), CLK_TCK (default 100),
//      POLL_MS (default 20), TIMEOUT_S (default 600).
//
// Steps: CONFIG RESETSTAT, INFO cpu; start the worker (t0); poll ZCARD
// completed every POLL_MS until it equals JOBS (t1); read the worker's VmHWM
// and utime+stime from /proc; INFO commandstats and INFO cpu; SIGTERM the
// worker and wait for it; verify the end state. Prints one JSON line.
// Exits non-zero, with a message on stderr, on any error.
const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const Redis = require('ioredis');

const [url, queue, jobsArg, kind, concArg] = process.argv.slice(2);
const JOBS = Number(jobsArg);
const C = Number(concArg);
const CLK_TCK = Number(process.env.CLK_TCK || 100);
const POLL_MS = Number(process.env.POLL_MS || 20);
const TIMEOUT_S = Number(process.env.TIMEOUT_S || 600);
const PREFIX = 'bull';

if (!url || !queue || !(JOBS > 0) || !['erpq', 'node'].includes(kind) || !(C > 0)) {
  console.error('usage: node measure.js REDIS_URL QUEUE JOBS erpq|node CONCURRENCY');
  process.exit(2);
}

const key = (s) => `${PREFIX}:${queue}:${s}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(msg) {
  throw new Error(`${kind} c=${C}: ${msg}`);
}

function parseInfo(text) {
  const out = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && line[0] !== '#') out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

async function redisCpuSeconds(r) {
  const info = parseInfo(await r.info('cpu'));
  const u = Number(info.used_cpu_user);
  const s = Number(info.used_cpu_sys);
  if (!Number.isFinite(u) || !Number.isFinite(s)) fail('INFO cpu lacks used_cpu_user/used_cpu_sys');
  return u + s;
}

// {command: calls} from INFO commandstats.
async function commandCalls(r) {
  const info = parseInfo(await r.info('commandstats'));
  const calls = {};
  for (const [k, v] of Object.entries(info)) {
    if (!k.startsWith('cmdstat_')) continue;
    const m = /(?:^|,)calls=(\d+)/.exec(v);
    if (m) calls[k.slice(8)] = Number(m[1]);
  }
  return calls;
}

function procStatus(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(text);
  if (!m) fail(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

function procCpuSeconds(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(f[14 - 3]);
  const stime = Number(f[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) fail(`cannot parse /proc/${pid}/stat`);
  return (utime + stime) / CLK_TCK;
}

function workerCommand() {
  if (kind === 'erpq') {
    const bin = process.env.ERPQ_WORKER;
    if (!bin || !fs.existsSync(bin)) fail(`ERPQ_WORKER (${bin}) does not exist`);
    return [bin, ['--redis', url, '--diag-queue', `${queue}:${C}`, '--log-level', 'warn']];
  }
  return [process.execPath, [path.join(__dirname, 'node-worker.js'), url, queue, String(C)]];
}

let child = null;
let childExit = null; // {code, signal} once it has exited
process.on('exit', () => {
  if (child && !childExit) child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (child && !childExit) child.kill('SIGKILL');
    process.exit(130);
  });
}

async function main() {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const waiting = await r.llen(key('wait'));
    if (waiting !== JOBS) fail(`expected ${JOBS} waiting jobs before the run, found ${waiting}`);
    if ((await r.zcard(key('completed'))) !== 0) fail('completed set is not empty before the run');

    // Commands this process sends after the reset, subtracted from the totals.
    const own = { 'config|resetstat': 1, info: 0, zcard: 0 };
    await r.config('RESETSTAT');
    const cpu0 = await redisCpuSeconds(r);
    own.info++;

    const [cmd, args] = workerCommand();
    const t0 = process.hrtime.bigint();
    child = spawn(cmd, args, { stdio: ['ignore', 2, 2] });
    const exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        childExit = { code, signal };
        resolve(childExit);
      });
    });
    child.on('error', (err) => {
      childExit = { code: -1, signal: null, error: err };
    });
    const pid = child.pid;
    if (!pid) fail(`cannot start ${cmd}`);

    const deadline = t0 + BigInt(TIMEOUT_S) * 1000000000n;
    let done = 0;
    let t1;
    for (;;) {
      done = await r.zcard(key('completed'));
      own.zcard++;
      if (done >= JOBS) {
        t1 = process.hrtime.bigint();
        break;
      }
      if (childExit) fail(`worker exited early (${JSON.stringify(childExit)}) after ${done}/${JOBS} jobs`);
      if (process.hrtime.bigint() > deadline) fail(`timeout after ${TIMEOUT_S}s with ${done}/${JOBS} completed`);
      await sleep(POLL_MS);
    }
    const seconds = Number(t1 - t0) / 1e9;

    if (childExit) fail(`worker exited before it could be sampled (${JSON.stringify(childExit)})`);
    const rssBytes = procStatus(pid);
    const workerCpu = procCpuSeconds(pid);
    const calls = await commandCalls(r);
    const cpu1 = await redisCpuSeconds(r);

    let totalCalls = 0;
    for (const [c, n] of Object.entries(calls)) totalCalls += Math.max(0, n - (own[c] || 0));

    child.kill('SIGTERM');
    const killTimer = setTimeout(() => child.kill('SIGKILL'), 40000);
    const ex = await exited;
    clearTimeout(killTimer);
    if (ex.signal || ex.code !== 0) fail(`worker did not exit cleanly on SIGTERM: ${JSON.stringify(ex)}`);

    // End state: every job completed with {"ok":true}, nothing else left.
    const [completed, wait, active, failed, delayed, paused] = await Promise.all([
      r.zcard(key('completed')),
      r.llen(key('wait')),
      r.llen(key('active')),
      r.zcard(key('failed')),
      r.zcard(key('delayed')),
      r.llen(key('paused')),
    ]);
    const state = { completed, wait, active, failed, delayed, paused };
    if (completed !== JOBS || wait || active || failed || delayed || paused)
      fail(`bad end state ${JSON.stringify(state)} (want completed=${JOBS}, the rest 0)`);
    for (const id of [1, JOBS]) {
      const rv = await r.hget(`${PREFIX}:${queue}:${id}`, 'returnvalue');
      let ok = false;
      try {
        ok = JSON.parse(rv).ok === true;
      } catch (_) {}
      if (!ok) fail(`job ${id} returnvalue is ${JSON.stringify(rv)}, want {"ok":true}`);
    }

    // Steady-state rate, without the worker's start-up: from the first to
    // the last finishedOn (the completed set's scores, in ms).
    const [firstId, firstMs] = await r.zrange(key('completed'), 0, 0, 'WITHSCORES');
    const [lastId, lastMs] = await r.zrange(key('completed'), -1, -1, 'WITHSCORES');
    const spanMs = Math.max(1, Number(lastMs) - Number(firstMs));
    void firstId, void lastId;

    const result = {
      kind,
      concurrency: C,
      jobs: JOBS,
      seconds,
      jobs_per_s: JOBS / seconds,
      steady_jobs_per_s: ((JOBS - 1) * 1000) / spanMs,
      rss_mib: rssBytes / 1048576,
      worker_cpu_us_per_job: (workerCpu * 1e6) / JOBS,
      redis_cpu_us_per_job: ((cpu1 - cpu0) * 1e6) / JOBS,
      redis_calls_per_job: totalCalls / JOBS,
      commands: calls,
      harness_commands: own,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    r.disconnect();
  }
}

main().catch((err) => {
  console.error('measure: ' + (err && err.message ? err.message : err));
  process.exit(1);
});
