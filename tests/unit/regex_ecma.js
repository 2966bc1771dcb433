// Reference results for the pattern subset of core/erpq_jsonschema_regex.c:
// what ECMA-262 (`new RegExp(p, 'u').test(s)`, as JSON Schema validators in
// JavaScript run a "pattern") answers for every (pattern, string) pair.
//
//   node regex_ecma.js CASES.json OUT.json [RANDOM_COUNT [SEED]]
//
// CASES.json holds {"accepted": [patterns], "strings": [strings]}. To the
// accepted patterns this script adds RANDOM_COUNT patterns drawn from the
// accepted grammar with a seeded generator (so a run is reproducible).
// OUT.json gets {"strings": [...], "patterns": [{"pattern", "valid",
// "error", "results": [bool per string]}]}; "valid" is false when
// ECMA-262 itself refuses the pattern (then the C side must refuse it too).
'use strict';
const fs = require('fs');

const [casesPath, outPath, countArg, seedArg] = process.argv.slice(2);
if (!casesPath || !outPath) {
  console.error('usage: node regex_ecma.js CASES.json OUT.json [RANDOM_COUNT [SEED]]');
  process.exit(2);
}
const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
const count = Number(countArg || 0);
let seed = Number(seedArg || 12345) >>> 0;

function rnd(n) {
  // xorshift32: small, seeded, the same on every run.
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
function pick(a) { return a[rnd(a.length)]; }

const LITERALS = ['a', 'b', 'c', 'é', '😀', '-', ' ', ',', '\u2028', 'Z', '0'];
const ESCAPED = ['\\.', '\\*', '\\(', '\\)', '\\/', '\\]', '\\[', '\\{', '\\}', '\\|', '\\+', '\\?', '\\$', '\\^', '\\\\'];
const QUANT = ['', '', '', '*', '+', '?', '{2}', '{0,2}', '{1,}', '{0}', '{1,3}'];
const CLASS_ITEMS = ['a', 'b', 'c', 'é', '😀', 'a-c', '0-9', 'A-Z', ' ', '^', '.', '*', '$', '|', '(', ')', '\n'];

function klass() {
  let s = '[' + (rnd(3) === 0 ? '^' : '');
  if (rnd(4) === 0) s += '-';
  const n = 1 + rnd(3);
  let items = '';
  for (let i = 0; i < n; i++) {
    let it = pick(CLASS_ITEMS);
    if (it === '^' && items === '' && !s.endsWith('-')) it = 'b'; // would negate
    items += it;
  }
  s += items;
  if (rnd(4) === 0) s += '-';
  return s + ']';
}
function atom(depth) {
  const r = rnd(10);
  if (r < 4) return pick(LITERALS);
  if (r < 5) return '.';
  if (r < 7) return klass();
  if (r < 8 && depth < 2) return '(' + alternation(depth + 1) + ')';
  return pick(ESCAPED);
}
// Anchors only where the subset takes them: ^ first and $ last in a
// top-level alternative.
function sequence(depth) {
  let s = !depth && rnd(3) === 0 ? '^' : '';
  const n = rnd(4) + (depth ? 0 : 1);
  for (let i = 0; i < n; i++) s += atom(depth) + pick(QUANT);
  return s + (!depth && rnd(3) === 0 ? '$' : '');
}
function alternation(depth) {
  let s = sequence(depth);
  while (rnd(4) === 0) s += '|' + sequence(depth);
  return s;
}

const patterns = cases.accepted.slice();
for (let i = 0; i < count; i++) patterns.push(alternation(0));

const out = { strings: cases.strings, patterns: [] };
for (const p of patterns) {
  let re;
  try {
    re = new RegExp(p, 'u');
  } catch (e) {
    out.patterns.push({ pattern: p, valid: false, error: String(e.message), results: [] });
    continue;
  }
  out.patterns.push({ pattern: p, valid: true, results: cases.strings.map((s) => re.test(s)) });
}
fs.writeFileSync(outPath, JSON.stringify(out));
