'use strict';
// Shared helpers for the erpq interop tests (node:test + Node bull 4.16.5).
//
// * env():               ERPQ_BIN_DIR / ERPQ_TEST_REDIS_URL, throwing (so the
//                        test file FAILS, never skips) when they are missing.
// * startWorker(opts):   our erpq-worker as a child process; its JSON log
//                        lines are collected in w.logs.
// * startNodeWorker():   a Node bull worker in its own process (kill -9-able).
// * queue()/redis():     Node bull Queue / ioredis clients, closed by cleanup().
// * waitFor(fn):         polls fn until it returns a truthy value or throws at
//                        the deadline; never use bare sleeps for correctness.
// * startRedis(opts):    a private redis-server on a free port (restart tests;
//                        opts.args adds redis-server flags, its data directory
//                        survives restarts so AOF restart tests reload it).
// * spawnBin(file, args): spawns one of our binaries, under $ERPQ_BIN_WRAPPER
//                        when that is set (tests/valgrind/vg runs them under
//                        valgrind memcheck).
// * cleanup():           kills every child and closes every client; call it
//                        from after() (it also runs on process exit).

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');

let Queue;
let Redis;
function loadBull() {
  if (!Queue) {
    Queue = require('bull');
    Redis = require('ioredis');
  }
}

const children = new Set();
const clients = new Set();
let seq = 0;

function env() {
  const binDir = process.env.ERPQ_BIN_DIR;
  const redisUrl = process.env.ERPQ_TEST_REDIS_URL;
  if (!binDir) throw new Error('ERPQ_BIN_DIR is not set (directory holding erpq-worker)');
  if (!redisUrl) throw new Error('ERPQ_TEST_REDIS_URL is not set (throwaway redis started by scripts/test)');
  const worker = path.join(binDir, 'erpq-worker');
  if (!fs.existsSync(worker)) throw new Error(`${worker} does not exist`);
  loadBull();
  return { binDir, redisUrl, worker };
}

/**
 * Spawns one of our binaries. With ERPQ_BIN_WRAPPER set (a program path),
 * runs `wrapper file args...` instead, so that the same tests can run our
 * binaries under valgrind (tests/valgrind/run).
 */
function spawnBin(file, args, opts = {}) {
  const wrap = process.env.ERPQ_BIN_WRAPPER;
  return wrap ? spawn(wrap, [file, ...args], opts) : spawn(file, args, opts);
}

/** True when our binaries run under a slow wrapper (valgrind). */
const wrapped = !!process.env.ERPQ_BIN_WRAPPER;

/** A queue name unique to this process and call. */
function qname(tag) {
  seq += 1;
  return `it-${tag}-${process.pid}-${Date.now().toString(36)}-${seq}`;
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

/**
 * Polls fn (sync or async) every interval ms until it returns a truthy value,
 * which is returned. Throws after timeout ms with message (a string or a
 * function returning one, evaluated at the deadline for diagnostics).
 */
async function waitFor(fn, { timeout = 10000, interval = 25, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const m = typeof message === 'function' ? await message() : message;
      throw new Error(`timed out after ${timeout} ms waiting for ${m}` +
        (lastErr ? ` (last error: ${lastErr.message})` : ''));
    }
    await sleep(interval);
  }
}

/** Resolves with {code, signal} once the child has exited. */
function exitPromise(child) {
  return new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
    } else {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    }
  });
}

function lineSplitter(onLine) {
  let buf = '';
  return chunk => {
    buf += chunk.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.length) onLine(line);
    }
  };
}

class ChildProc {
  constructor(child, label) {
    this.child = child;
    this.label = label;
    this.pid = child.pid;
    this.logs = [];     // parsed JSON lines (stdout)
    this.raw = [];      // stdout lines that were not JSON
    this.stderr = [];
    this.exited = exitPromise(child);
    this.exitInfo = null;
    this.exited.then(info => {
      this.exitInfo = info;
      children.delete(this);
    });
    child.stdout.on('data', lineSplitter(line => {
      try {
        this.logs.push(JSON.parse(line));
      } catch {
        this.raw.push(line);
      }
    }));
    child.stderr.on('data', lineSplitter(line => this.stderr.push(line)));
    children.add(this);
  }

  get running() {
    return this.exitInfo === null;
  }

  /** Log entries with this event (and matching every key of where). */
  events(event, where = {}) {
    return this.logs.filter(l => l.event === event &&
      Object.entries(where).every(([k, v]) => l[k] === v));
  }

  /** Waits for a log entry matching event/where; returns it. */
  waitLog(event, where = {}, timeout = 10000) {
    return waitFor(() => this.events(event, where)[0], {
      timeout,
      interval: 10,
      message: () => `${this.label}: log ${event} ${JSON.stringify(where)}; exit=${JSON.stringify(this.exitInfo)}; ` +
        `last lines: ${this.tail(8)}`,
    });
  }

  tail(n = 20) {
    const l = this.logs.slice(-n).map(x => JSON.stringify(x));
    return l.concat(this.raw.slice(-5), this.stderr.slice(-5)).join('\n  ');
  }

  signal(sig) {
    if (this.running) {
      try {
        process.kill(this.pid, sig);
      } catch { /* already gone */ }
    }
  }

  /** SIGKILL and wait for the exit. */
  async kill9() {
    this.signal('SIGKILL');
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after timeout ms; returns {code, signal, ms}. */
  async stop(timeout = 15000) {
    const t0 = Date.now();
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), timeout);
    const info = await this.exited;
    clearTimeout(timer);
    return { ...info, ms: Date.now() - t0 };
  }
}

/**
 * Starts erpq-worker.
 *   queue:        queue name (served with --diag-queue unless diag === false)
 *   concurrency:  default 1
 *   args:         extra flags, e.g. ['--stalled-interval', '1000']
 *   redisUrl:     default ERPQ_TEST_REDIS_URL
 *   ready:        wait until the blocking connection for queue is up (default true)
 */
async function startWorker({ queue, concurrency = 1, args = [], redisUrl, diag = true,
  ready = true, logLevel = 'info' } = {}) {
  const e = env();
  const argv = ['--redis', redisUrl || e.redisUrl,
    diag ? '--diag-queue' : '--queue', `${queue}:${concurrency}`,
    '--log-level', logLevel, ...args];
  const child = spawnBin(e.worker, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const w = new ChildProc(child, `erpq-worker[${child.pid}] ${queue}`);
  w.argv = argv;
  w.startedAt = Date.now();
  if (ready) await w.waitLog('redis.connected', { conn: `blocking:${queue}` }, wrapped ? 60000 : 10000);
  return w;
}

/** Ids of jobs our worker logged as started (job.active), in order. */
function activeIds(w, queue) {
  return w.events('job.active', queue ? { queue } : {}).map(l => l.jobId);
}

/**
 * A Node bull worker in a separate process (lib/node_worker.js), so that it
 * can be killed with SIGKILL. handlers: { name: {kind:'sleep'|'echo'|'return', ...} }.
 * Its stdout carries JSON lines {event:'active'|'completed'|'ready', jobId}.
 */
async function startNodeWorker({ queue, redisUrl, settings = {}, handlers, concurrency = 1,
  limiter } = {}) {
  const e = env();
  const spec = { queue, redisUrl: redisUrl || e.redisUrl, settings, handlers, concurrency, limiter };
  const child = spawn(process.execPath, [path.join(__dirname, 'node_worker.js'), JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_PATH: process.env.NODE_PATH || path.join(__dirname, '..', 'node_modules') },
  });
  const w = new ChildProc(child, `node-worker[${child.pid}] ${queue}`);
  await w.waitLog('ready', {}, 10000);
  return w;
}

/** A Node bull Queue (closed by cleanup()). */
function queue(name, opts = {}, redisUrl) {
  const e = env();
  const q = new Queue(name, redisUrl || e.redisUrl, opts);
  q.on('error', () => {}); // connection errors during restart tests are expected
  clients.add(q);
  return q;
}

/** Subscribes q to a global event and resolves when the subscription is live. */
async function onGlobal(q, event, fn) {
  q.on(event, fn);
  await q._registerEvent(event);
}

/** A plain ioredis client (closed by cleanup()). */
function redis(url) {
  const e = env();
  const r = new Redis(url || e.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
  r.on('error', () => {});
  clients.add(r);
  return r;
}

/** bull key for queue q: key(q,'wait') → 'bull:q:wait'; key(q) → 'bull:q:'. */
function key(q, suffix = '') {
  return `bull:${q}:${suffix}`;
}

/** HGETALL of a job hash, or null. */
async function jobHash(r, q, id) {
  const h = await r.hgetall(key(q, id));
  return Object.keys(h).length ? h : null;
}

/** Sizes of every state structure of queue q. */
async function counts(r, q) {
  const [wait, active, paused, delayed, completed, failed, priority] = await Promise.all([
    r.llen(key(q, 'wait')), r.llen(key(q, 'active')), r.llen(key(q, 'paused')),
    r.zcard(key(q, 'delayed')), r.zcard(key(q, 'completed')), r.zcard(key(q, 'failed')),
    r.zcard(key(q, 'priority')),
  ]);
  return { wait, active, paused, delayed, completed, failed, priority };
}

/** Waits until job id of queue q is in set ('completed'|'failed'); returns its hash. */
async function waitFinished(r, q, id, set = 'completed', timeout = 15000) {
  await waitFor(async () => (await r.zscore(key(q, set), id)) !== null, {
    timeout,
    message: async () => `job ${id} of ${q} in ${set}; hash=${JSON.stringify(await jobHash(r, q, id))}; ` +
      `counts=${JSON.stringify(await counts(r, q))}`,
  });
  return jobHash(r, q, id);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A private redis-server (child process) on a free port.
 * Returns { port, url, shutdown(), start() }: shutdown() sends SHUTDOWN NOSAVE
 * and waits for the exit; start() starts it again on the same port.
 */
async function startRedis({ args = [] } = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'erpq-redis-'));
  const srv = {
    port,
    dir,
    url: `redis://127.0.0.1:${port}/0`,
    proc: null,
    async start() {
      const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      this.proc = new ChildProc(child, `redis-server:${port}`);
      await waitFor(() => {
        try {
          // LOADING (an AOF being read back) counts as up: the port answers.
          return /^(PONG|LOADING)/.test(execFileSync('redis-cli', ['-p', String(port), 'ping'],
            { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
        } catch {
          return false;
        }
      }, { timeout: 10000, interval: 5, message: `redis-server on port ${port}` });
      return this;
    },
    /** Runs redis-cli with args against this server; returns its output. */
    cli(...a) {
      return execFileSync('redis-cli', ['-p', String(port), ...a], { stdio: ['ignore', 'pipe', 'pipe'] })
        .toString().trim();
    },
    async shutdown() {
      try {
        execFileSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { stdio: 'ignore' });
      } catch { /* redis-cli reports the dropped connection */ }
      const timer = setTimeout(() => this.proc.signal('SIGKILL'), 5000);
      await this.proc.exited;
      clearTimeout(timer);
    },
  };
  await srv.start();
  return srv;
}

/** Kills every child process and closes every client. Safe to call twice. */
async function cleanup() {
  for (const c of [...children]) c.signal('SIGKILL');
  await Promise.all([...children].map(c => Promise.race([c.exited, sleep(3000)])));
  const cs = [...clients];
  clients.clear();
  await Promise.all(cs.map(async c => {
    try {
      if (c instanceof Queue) await Promise.race([c.close(true), sleep(3000)]);
      else c.disconnect();
    } catch { /* ignore */ }
    try {
      if (c instanceof Queue) c.disconnect();
    } catch { /* ignore */ }
  }));
}

process.on('exit', () => {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch { /* gone */ }
  }
});

/** Rejects with a timeout error if p does not settle within ms. */
function within(p, ms, what = 'promise') {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Per-id counter of global events. */
class Counter extends Map {
  inc(k) {
    this.set(String(k), (this.get(String(k)) || 0) + 1);
  }
  n(k) {
    return this.get(String(k)) || 0;
  }
}

module.exports = {
  env, qname, sleep, waitFor, spawnBin, wrapped, startWorker, startNodeWorker, activeIds, queue, onGlobal, redis, key,
  jobHash, counts, waitFinished, startRedis, freePort, cleanup, Counter, within, assert,
};
