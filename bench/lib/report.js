'use strict';
// Turns the JSON lines of bench/lib/measure.js into the benchmark table.
// Usage: node report.js RESULTS.jsonl "CONCURRENCIES" "KINDS"
// Each metric is the median of its repeats (taken per metric).
const fs = require('node:fs');

const [file, concArg, kindsArg] = process.argv.slice(2);
const concs = concArg.trim().split(/\s+/).map(Number);
const kinds = kindsArg.trim().split(/\s+/);
const rows = fs
  .readFileSync(file, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const METRICS = ['jobs_per_s', 'steady_jobs_per_s', 'rss_mib', 'worker_cpu_us_per_job', 'redis_cpu_us_per_job', 'redis_calls_per_job'];

const med = {}; // med[kind][c] = {metric: median, n}
for (const k of kinds) {
  med[k] = {};
  for (const c of concs) {
    const rs = rows.filter((r) => r.kind === k && r.concurrency === c);
    if (!rs.length) continue;
    const m = { n: rs.length, runs: rs.map((r) => r.jobs_per_s) };
    for (const key of METRICS) m[key] = median(rs.map((r) => r[key]));
    med[k][c] = m;
  }
}

const ratioOf = (c, metric) =>
  med.erpq && med.node && med.erpq[c] && med.node[c] ? med.erpq[c][metric] / med.node[c][metric] : null;
const ratio = (c) => ratioOf(c, 'jobs_per_s');
const steadyRatio = (c) => ratioOf(c, 'steady_jobs_per_s');

const head = ['kind', 'conc', 'jobs/s', 'erpq/node', 'steady jobs/s', 'erpq/node', 'peak RSS MiB', 'worker CPU us/job', 'Redis CPU us/job', 'Redis calls/job'];
const body = [];
for (const c of concs) {
  for (const k of kinds) {
    const m = med[k][c];
    if (!m) continue;
    const r = ratio(c);
    const sr = steadyRatio(c);
    body.push([
      k,
      String(c),
      m.jobs_per_s.toFixed(0),
      k === 'erpq' && r !== null ? r.toFixed(2) + 'x' : '',
      m.steady_jobs_per_s.toFixed(0),
      k === 'erpq' && sr !== null ? sr.toFixed(2) + 'x' : '',
      m.rss_mib.toFixed(1),
      m.worker_cpu_us_per_job.toFixed(1),
      m.redis_cpu_us_per_job.toFixed(1),
      m.redis_calls_per_job.toFixed(2),
    ]);
  }
}
const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
const fmt = (cells) => cells.map((s, i) => (i < 2 ? s.padEnd(width[i]) : s.padStart(width[i]))).join('  ');
console.log(fmt(head));
console.log(width.map((w) => '-'.repeat(w)).join('  '));
for (const b of body) console.log(fmt(b));

const nRuns = Math.max(...Object.values(med).flatMap((o) => Object.values(o).map((m) => m.n)));
if (nRuns > 1) {
  console.log('');
  console.log(`medians of ${nRuns} runs; jobs/s of each run:`);
  for (const c of concs)
    for (const k of kinds)
      if (med[k][c]) console.log(`  ${k} c=${c}: ${med[k][c].runs.map((x) => x.toFixed(0)).join(' ')}`);
}

console.log('');
const parts = [];
let allMet = true;
// The target is judged on both rates: with start-up (wall) and without it
// (steady), so a slow-starting peer cannot flatter the ratio.
for (const c of [10, 50]) {
  const r = ratio(c);
  const sr = steadyRatio(c);
  if (r === null || sr === null) {
    parts.push(`erpq >= 2x node jobs/s at c=${c}: NOT MEASURED`);
    allMet = false;
  } else {
    const ok = r >= 2 && sr >= 2;
    allMet = allMet && ok;
    parts.push(`erpq >= 2x node jobs/s at c=${c}: ${ok ? 'MET' : 'MISSED'} (wall ${r.toFixed(2)}x, steady ${sr.toFixed(2)}x)`);
  }
}
const erpqRss = med.erpq ? Object.values(med.erpq).map((m) => m.rss_mib) : [];
if (!erpqRss.length) {
  parts.push('erpq peak RSS < 16 MiB: NOT MEASURED');
  allMet = false;
} else {
  const max = Math.max(...erpqRss);
  const ok = max < 16;
  allMet = allMet && ok;
  parts.push(`erpq peak RSS < 16 MiB: ${ok ? 'MET' : 'MISSED'} (max ${max.toFixed(1)} MiB)`);
}
console.log(`targets: ${parts.join('; ')} => ${allMet ? 'ALL MET' : 'NOT ALL MET'}`);
