#!/usr/bin/env node
// Generates tests/unit/cron_vectors.tsv from the real cron-parser, the
// library bull 4.16.5 uses to schedule repeatable jobs.
//
// Usage: node scripts/gen-cron-vectors.js [cron-parser dir] > tests/unit/cron_vectors.tsv
// The cron-parser directory may also be given in CRON_PARSER_DIR; it defaults
// to /tmp/bullsrc/node_modules/cron-parser (in the repository the test peer
// lives under tests/interop/node_modules/cron-parser).
//
// Each line is tab-separated:
//   next  <expr> <tz> <currentDate ms> <endDate ms or -> <results>
//   error <expr> <message>
// where <results> is a comma-separated chain: the first value is
// parseExpression(expr, {currentDate, tz, endDate}).next(), and each
// following one is a fresh parse whose currentDate is the previous result,
// which is how bull walks a repeat chain.  "none" ends a chain where next()
// throws.
'use strict';

const path = require('path');

const dir = process.argv[2] || process.env.CRON_PARSER_DIR ||
  '/tmp/bullsrc/node_modules/cron-parser';
const parser = require(path.resolve(dir));
const luxon = require(require.resolve('luxon', { paths: [path.resolve(dir)] }));

// A small deterministic generator, so that the file only changes when the
// case list does.
let seed = 0x5eed1234;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function randInt(lo, hi) {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

const CHAIN = 3;

function nextOnce(expr, tz, current, end) {
  try {
    const opts = { currentDate: new Date(current), tz };
    if (end !== undefined) opts.endDate = end;
    return parser.parseExpression(expr, opts).next().getTime();
  } catch (e) {
    return null;
  }
}

const lines = [];
const seen = new Set();

function addNext(expr, tz, current, end) {
  const id = [expr, tz, current, end].join('\t');
  if (seen.has(id)) return;
  seen.add(id);
  // Parse errors belong in the error section.
  try {
    parser.parseExpression(expr, { currentDate: new Date(current), tz });
  } catch (e) {
    return;
  }
  const out = [];
  let cur = current;
  for (let i = 0; i < CHAIN; i++) {
    const n = nextOnce(expr, tz, cur, end);
    if (n === null) {
      out.push('none');
      break;
    }
    out.push(String(n));
    cur = n;
  }
  lines.push(['next', expr, tz, String(current), end === undefined ? '-' : String(end),
    out.join(',')].join('\t'));
}

function addError(expr) {
  try {
    parser.parseExpression(expr, { currentDate: new Date(0), tz: 'UTC' });
  } catch (e) {
    lines.push(['error', expr, e.message].join('\t'));
    return;
  }
  throw new Error('expected a parse error for ' + JSON.stringify(expr));
}

// Instants where the zone's offset changes, found by scanning.
function transitions(zone, fromYear, toYear) {
  const off = (t) => luxon.DateTime.fromMillis(t, { zone }).offset;
  const out = [];
  const step = 15 * 60 * 1000;
  let t = Date.UTC(fromYear, 0, 1);
  const end = Date.UTC(toYear + 1, 0, 1);
  let o = off(t);
  for (; t < end; t += step) {
    const o2 = off(t + step);
    if (o2 !== o) {
      let lo = t, hi = t + step;
      while (hi - lo > 1000) {
        const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
        if (off(mid) === o) lo = mid; else hi = mid;
      }
      out.push(hi);
      o = o2;
    }
  }
  return out;
}

// ---- General expressions, at random instants -----------------------------

const GENERAL = [
  '* * * * *', '* * * * * *', '*/5 * * * *', '*/15 * * * * *', '0 * * * *',
  '0 0 * * *', '30 4 * * *', '0 12 * * 1-5', '15 10 * * MON-FRI', '0 0 1 * *',
  '0 0 1 1 *', '0 0 29 2 *', '0 0 L * *', '59 23 L * *', '0 0 31 * *',
  '0 0 30 * *', '0 9 1,15 * 5', '30 4 1,15 * 5', '0 0 13 * FRI', '0 0 * * 0',
  '0 0 * * 7', '0 0 * * SUN', '0 0 * * sat,sun', '0 8 * * 1#1', '0 8 * * 5#3',
  '0 8 * * 0#5', '0 17 * * 5L', '0 17 * * 0L', '0 17 * * 7L', '10-40/7 * * * *',
  '5/15 * * * *', '5/15 * * * * *', '0 */2 * * *', '0 1-23/3 * * *', '0 0 */3 * *',
  '0 0 1 */2 *', '0 0 1 JAN,APR,JUL,OCT *', '0 0 1 jan-mar *', '0 0 ? * MON',
  '0 0 1 * ?', '0 0 0 * * *', '0 30 1 * * *', '30 * * * * *', '0,30 * * * * *',
  '1,2,3,5,8,13,21,34,55 * * * * *', '0 0 12 1-7 * 1', '0 0 12 * * 1-5',
  '0 15 10 ? * 6L', '0 0 0 L 2 *', '0 0 0 29 2 *', '0 0 0 31 4,6 *', '0 0 31 4,6 *',
  '@hourly', '@daily', '@weekly', '@monthly', '@yearly', '0 0 * * 1-7',
  '0 0 * * 0-6', '0 0 * * 2-7/2', '0 0 * * 1-7/2', '0 0 * * */2', '0 0 * * 5/2',
  '0 0 1-31 * *', '0 0 1-30 * *', '0 0 1-29 2 *', '0 0 1-28 2 *', '0 0 2-30 * 1',
  '0 0 1,1 * *', '0 0 15 * 1,1,1,1,1,1,1', '*/7 */5 * * *', '0 0 */10 * 1', '0 0 L * 5',
  '0 0 L,15 * *', '0 0 * * 1,5L', '0 0 * * 5L,1', '0 12 * 2 1#2', '0 12 1 * 1#2',
  '0 0 * * 5L', '59 59 23 * * *', '0 59 23 31 12 *', '0 0 0 1 1 *', '5', '0 5',
  '0 0 5', '', '0 0 1-5/2,20-25 * *', '0 0 10-15,1-3 * *', '0-10/3 * * * *',
  '0 0 * * 6#5', '0 0 * * 1#4', '0 0 1 * 1L', '0 0 1 2 *', '0 0 10 * * 1#1',
  '0 0 L * * *', '0 0 0 L * 5', '0 0 L 4 *', '0 */20 9-17 * * 1-5',
  '1-2-3-70 * * * *', '5- * * * *', '0- * * * * *', 'L/2 0 L * *', '0 0 * * 15L',
  '0 0 * * L', '0 0 * * 1,L', '@daily ', '0 0 1 1 * ', '  0   0 1 1 *',
];

const ZONES = ['UTC', 'Asia/Kolkata', 'America/New_York', 'Europe/London',
  'Australia/Lord_Howe', 'Asia/Kathmandu'];
const EXTRA_ZONES = ['America/Santiago', 'Asia/Beirut', 'America/Sao_Paulo',
  'Pacific/Chatham', 'UTC+3', 'Europe/Paris', 'Australia/Sydney'];

for (const expr of GENERAL) {
  for (const tz of ZONES) {
    for (let i = 0; i < 2; i++) {
      const t = Date.UTC(randInt(2001, 2035), randInt(0, 11), randInt(1, 28),
        randInt(0, 23), randInt(0, 59), randInt(0, 59), randInt(0, 999));
      addNext(expr, tz, t);
    }
  }
}

// Month and year edges, leap days, exact second boundaries and milliseconds.
const EDGES = [
  Date.UTC(2024, 1, 28, 23, 59, 59, 999), Date.UTC(2024, 1, 29, 0, 0, 0, 0),
  Date.UTC(2023, 1, 28, 12, 0, 0, 0), Date.UTC(2100, 1, 28, 0, 0, 0, 0),
  Date.UTC(2024, 11, 31, 23, 59, 59, 0), Date.UTC(2025, 0, 1, 0, 0, 0, 0),
  Date.UTC(2025, 0, 1, 0, 0, 0, 1), Date.UTC(2025, 5, 30, 23, 59, 0, 500),
  Date.UTC(2025, 3, 30, 0, 0, 0, 0), Date.UTC(2050, 6, 15, 10, 0, 0, 0),
];
const EDGE_EXPRS = ['* * * * * *', '0 * * * * *', '0 0 * * *', '0 0 L * *',
  '0 0 29 2 *', '0 0 1 * *', '59 23 31 12 *', '0 0 * * 5L', '0 0 * * 1#1',
  '*/10 * * * * *'];
for (const expr of EDGE_EXPRS) {
  for (const tz of ['UTC', 'Asia/Kolkata', 'America/New_York']) {
    for (const t of EDGES) addNext(expr, tz, t);
  }
}

// ---- Daylight-saving transitions -------------------------------------------

const DST_EXPRS = [
  '0 2 * * *', '30 2 * * *', '0 1 * * *', '30 1 * * *', '0 3 * * *', '0 0 * * *',
  '0 * * * *', '30 * * * *', '*/15 * * * *', '* * * * *', '0 0,1,2,3 * * *',
  '0 30 1 * * *', '59 59 1 * * *', '0 */2 * * *', '15,45 1-3 * * *', '*/10 * * * * *',
  '0 0 1 * * *', '0 0 2 * * *', '0 30 2 * * *', '0 0 3 * * *', '0 0 23 * * *',
  '59 23 * * *', '0 12 * * *', '0 1-3 * * *', '0 0 * * 0', '45 1 * * *',
  '0 0 L * *', '30 0 * * *',
];
const DST_DELTAS = [-3600e3 - 1, -1800e3, -1e3, 0, 1e3, 3600e3 + 500];
for (const tz of ZONES.concat(EXTRA_ZONES)) {
  const trs = transitions(tz, 2024, 2025);
  for (const tr of trs) {
    for (const expr of DST_EXPRS) {
      for (const d of DST_DELTAS) addNext(expr, tz, tr + d);
    }
  }
}
// A few older and later years, which exercise the zone files' footers.
for (const tz of ['America/New_York', 'Europe/London', 'Australia/Lord_Howe']) {
  for (const tr of transitions(tz, 2045, 2045).concat(transitions(tz, 1999, 1999))) {
    for (const expr of ['0 2 * * *', '30 1 * * *', '0 * * * *', '0 0 * * *']) {
      for (const d of [-3600e3, -1e3, 0, 1e3]) addNext(expr, tz, tr + d);
    }
  }
}
for (const tz of ['America/Sao_Paulo']) {
  for (const tr of transitions(tz, 2017, 2018)) {
    for (const expr of ['0 0 * * *', '0 1 * * *', '30 0 * * *', '0 0 1 * *', '0 * * * *']) {
      for (const d of [-3600e3, -1e3, 0, 1e3, 3600e3]) addNext(expr, tz, tr + d);
    }
  }
}

// ---- End dates -------------------------------------------------------------

for (const [expr, tz, cur, end] of [
  ['0 * * * *', 'UTC', Date.UTC(2025, 0, 1, 0, 30), Date.UTC(2025, 0, 1, 1, 0)],
  ['0 * * * *', 'UTC', Date.UTC(2025, 0, 1, 0, 30), Date.UTC(2025, 0, 1, 0, 59, 59)],
  ['0 * * * *', 'UTC', Date.UTC(2025, 0, 1, 0, 30), Date.UTC(2025, 0, 1, 3, 0)],
  ['*/5 * * * * *', 'Asia/Kolkata', Date.UTC(2025, 0, 1, 0, 0, 1), Date.UTC(2025, 0, 1, 0, 0, 12)],
  ['0 0 * * *', 'America/New_York', Date.UTC(2025, 2, 8, 12), Date.UTC(2025, 2, 10, 4)],
  ['0 0 1 1 *', 'UTC', Date.UTC(2025, 5, 1), Date.UTC(2026, 0, 1)],
  ['0 0 1 1 *', 'UTC', Date.UTC(2025, 5, 1), Date.UTC(2025, 11, 31)],
]) addNext(expr, tz, cur, end);

// ---- Parse errors ----------------------------------------------------------

for (const expr of [
  '60 * * * *', '* 24 * * *', '* * 32 * *', '* * 0 * *', '* * * 13 *', '* * * 0 *',
  '* * * * 8', '61 * * * * *', '* * * * * * *', '0 0 30 2 *', '0 0 31 4 *',
  'a * * * *', '* * * FOO *', '* * * * FUN', '5-3 * * * *', '*/0 * * * *',
  '1,,2 * * * *', ',1 * * * *', '1/2/3 * * * *', '* * * * 1#6', '* * * * 1#0',
  '* * * * 1#2,3', '* * * * 1-2#2', '* * * * */2#1', '* * * * 1#2#3', '- * * * *',
  '-5 * * * *', '* * L-5 * *', '* * * * L-1', '* 1-30 * * *', 'L * * * *',
  '0 0 * * ?,*', '*/x * * * *', '1-70-3 * * * *', '@reboot', '? * * * *',
  '* * * JANUARY *', '0 0 0 * * 1-8', '0 0 0 0 * *', '0 0 0 * 12-13 *',
]) addError(expr);

process.stdout.write('# Generated by scripts/gen-cron-vectors.js from cron-parser ' +
  require(path.join(path.resolve(dir), 'package.json')).version + ' (luxon ' +
  luxon.VERSION + ', ICU tz ' + process.versions.tz + ').\n' +
  '# next\\texpr\\ttz\\tcurrentDate ms\\tendDate ms or -\\tchained results\n' +
  '# error\\texpr\\tmessage\n');
process.stdout.write(lines.join('\n') + '\n');
