'use strict';
// The textbook fee run, for bench/fees.sh: a Node bull 4.16.5 producer reads
// the students, structures and concessions with mysql2, computes each
// student's fees (the same rules and rounding as erpq's generate-fees),
// addBulk()s one job per student (batches of 1,000), and a Node bull worker
// (CONCURRENCY, default 10, over a mysql2 pool of the same size) does one
// INSERT per job. Both run in this process' children; this prints one JSON
// line {seconds, jobs, rows, producerRssMiB, workerRssMiB}.
//
// Usage: node fees-textbook.js produce|work|run REDIS_URL MYSQL_URL SCHOOL PERIOD DUE [CONCURRENCY]
const { spawn } = require('node:child_process');
const Queue = require('bull');
const mysql = require('mysql2/promise');

const [mode, redisUrl, mysqlUrl, schoolArg, period, due, concArg] = process.argv.slice(2);
const school = Number(schoolArg);
const concurrency = Number(concArg || 10);
const QUEUE = 'bench-fees-textbook';

function rss() { return process.resourceUsage().maxRSS / 1024; }

async function produce() {
  const db = await mysql.createConnection(mysqlUrl);
  const [structs] = await db.query(
    'SELECT id, class_id, fee_head_id, amount_minor FROM fee_structures WHERE school_id = ? AND active = 1', [school]);
  const [students] = await db.query(
    "SELECT id, class_id FROM students WHERE school_id = ? AND status = 'active' ORDER BY id", [school]);
  const [conc] = await db.query(
    'SELECT c.student_id, c.fee_head_id, c.kind, c.percent_bp, c.amount_minor FROM student_concessions c' +
    ' JOIN students s ON s.id = c.student_id WHERE s.school_id = ? AND (c.valid_from IS NULL OR c.valid_from <= ?)' +
    ' AND (c.valid_to IS NULL OR c.valid_to >= ?)', [school, due, due]);
  await db.end();
  const byStudent = new Map();
  for (const c of conc) {
    if (!byStudent.has(c.student_id)) byStudent.set(c.student_id, []);
    byStudent.get(c.student_id).push(c);
  }
  const q = new Queue(QUEUE, redisUrl);
  let batch = [];
  let jobs = 0;
  for (const s of students) {
    const fees = [];
    for (const f of structs) {
      if (f.class_id !== null && f.class_id !== s.class_id) continue;
      const gross = Number(f.amount_minor);
      let c = 0;
      for (const k of byStudent.get(s.id) || []) {
        if (k.fee_head_id !== null && k.fee_head_id !== f.fee_head_id) continue;
        c += k.kind === 'percent' ? Math.floor((gross * k.percent_bp + 5000) / 10000) : Number(k.amount_minor);
      }
      if (c > gross) c = gross;
      fees.push([f.id, gross, c]);
    }
    batch.push({ name: 'student-fees', data: { schoolId: school, studentId: s.id, period, dueDate: due, fees } });
    if (batch.length === 1000) {
      await q.addBulk(batch);
      jobs += batch.length;
      batch = [];
    }
  }
  if (batch.length) {
    await q.addBulk(batch);
    jobs += batch.length;
  }
  await q.close();
  console.log(JSON.stringify({ jobs, rssMiB: rss() }));
}

async function work() {
  const pool = mysql.createPool({ uri: mysqlUrl, connectionLimit: concurrency });
  const q = new Queue(QUEUE, redisUrl);
  let rows = 0;
  q.process('student-fees', concurrency, async (job) => {
    const d = job.data;
    const values = d.fees.map(([fs, gross, c]) => [d.schoolId, d.studentId, fs, d.period, gross, c, gross - c, d.dueDate, String(job.id)]);
    const [r] = await pool.query(
      'INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor, concession_minor,' +
      ' amount_minor, due_date, created_by_job) VALUES ? ON DUPLICATE KEY UPDATE id = id', [values]);
    rows += r.affectedRows;
    return { created: r.affectedRows };
  });
  const stop = async () => {
    await q.close();
    await pool.end();
    console.log(JSON.stringify({ rows, rssMiB: rss() }));
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  console.log(JSON.stringify({ ready: true }));
}

function child(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [__filename, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b) => { out += b; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args[0]} exited ${code}`))));
  });
}

async function run() {
  const args = [redisUrl, mysqlUrl, schoolArg, period, due, String(concurrency)];
  const w = spawn(process.execPath, [__filename, 'work', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let wout = '';
  await new Promise((resolve) => w.stdout.on('data', (b) => { wout += b; if (wout.includes('"ready"')) resolve(); }));
  const q = new Queue(QUEUE, redisUrl);
  await q.empty();
  const t0 = process.hrtime.bigint();
  const pout = await child(['produce', ...args]);
  const { jobs, rssMiB: producerRssMiB } = JSON.parse(pout.trim().split('\n').pop());
  for (;;) {
    const c = await q.getJobCounts();
    if (c.completed + c.failed >= jobs) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const failed = (await q.getJobCounts()).failed;
  const exited = new Promise((r) => w.on('exit', r));
  w.kill('SIGTERM');
  await exited;
  const wl = JSON.parse(wout.trim().split('\n').pop());
  await q.obliterate({ force: true });
  await q.close();
  console.log(JSON.stringify({ seconds, jobs, failed, rows: wl.rows, producerRssMiB, workerRssMiB: wl.rssMiB }));
}

({ produce, work, run })[mode]().catch((e) => { console.error(e); process.exit(1); });
