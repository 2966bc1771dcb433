#!/usr/bin/env node
// Generates tests/unit/bull_vectors.json from the real bull 4.16.5 (the test
// peer under tests/interop/node_modules), for test_opts.c and test_bull.c.
//
// Usage: node tests/unit/gen-bull-vectors.js [bull dir] > tests/unit/bull_vectors.json
// The bull directory defaults to tests/interop/node_modules/bull.
//
// Sections:
//   defaults: opts as the producer gives them -> JSON.stringify(job.opts)
//             after bull's Job constructor (setDefaultOpts), timestamp fixed.
//   events:   [id, val] -> JSON.stringify({jobId: id, val}) (the completed /
//             failed event message moveToFinished publishes).
//   data:     JSON text -> JSON.stringify(JSON.parse(text)) (job.toData()).
//   scores:   [id, dueMs] -> scripts.moveToDelayedArgs' score.
//   backoff:  [type, delay, attemptsMade] -> backoffs.calculate().
'use strict';

const path = require('path');
const dir = process.argv[2] || path.join(__dirname, '..', 'interop', 'node_modules', 'bull');
const Job = require(path.join(dir, 'lib', 'job.js'));
const backoffs = require(path.join(dir, 'lib', 'backoffs.js'));
const scripts = require(path.join(dir, 'lib', 'scripts.js'));

const NOW = 1700000000123;
const fakeQueue = { toKey: k => 'bull:q:' + k };
const realNow = Date.now;
Date.now = () => NOW;

const defaults = [
  '{}',
  '{"priority":3,"lifo":true}',
  '{"attempts":"3"}',
  '{"attempts":5.9}',
  '{"backoff":1000}',
  '{"backoff":0}',
  '{"backoff":{"type":"exponential","delay":500}}',
  '{"zeta":1,"alpha":{"b":2,"a":1},"delay":250,"jobId":"x/y"}',
  '{"delay":"1500"}',
  '{"timestamp":42,"removeOnComplete":true,"removeOnFail":{"age":60,"count":5}}',
  '{"attempts":2,"backoff":{"type":"jitter","options":{"max":9}},"timeout":100}',
  '{"jobId":"élève-ü","repeatless":"☃"}',
].map(text => {
  const job = new Job(fakeQueue, 'n', {}, JSON.parse(text));
  return { opts: text, expected: JSON.stringify(job.opts) };
});

const tricky = [
  'plain',
  'with "quotes" and \\backslash\\',
  'line1\nline2\r\nline3\ttab',
  'unicode: élève ☃ 日本語 😀',
  'slash / and </script>',
  'control \u0001\u0007\u0008\u000c',
  '',
  '{"ok":true,"n":[1,2]}',
  'null',
];
const events = tricky.map(v => ({ id: '17', val: v, expected: JSON.stringify({ jobId: '17', val: v }) }));
events.push({ id: 'id "q"/é', val: 'x', expected: JSON.stringify({ jobId: 'id "q"/é', val: 'x' }) });
const eventsHex = ['esc \u001b[31mred\u001b[0m', 'vt \u000b and \u001f']
  .map(v => ({ id: '3', val: v, expected: JSON.stringify({ jobId: '3', val: v }) }));

const data = [
  '{ "a" : 1 , "b" : [ 1, 2, { "c" : null } ] }',
  '{"z":1,"a":2,"m":{"y":true,"b":false}}',
  '{"url":"https://x.example/a/b","s":"é☃😀","e":"\\u00e9"}',
  '[1,"two",3]',
  '"just a string"',
  '12',
  'null',
  '{"n":-0,"big":123456789012}',
].map(text => ({ text, expected: JSON.stringify(JSON.parse(text)) }));
const dataFloat = ['{"fee":1234.56,"rate":0.1,"x":1e21}']
  .map(text => ({ text, expected: JSON.stringify(JSON.parse(text)) }));

const due = 1700000005000;
const scores = ['1', '4095', '4096', '4097', '123456789', 'abc', 'repeat:abc:1700', '-5', '0']
  .map(id => {
    const args = scripts.moveToDelayedArgs(fakeQueue, id, due, false);
    return { id, due, expected: String(args[4]) };
  });
const scoresJs = ['1e3', '0x1f', ' 42 '].map(id => {
  const args = scripts.moveToDelayedArgs(fakeQueue, id, due, false);
  return { id, due, expected: String(args[4]) };
});

const backoff = [];
for (const [type, delay] of [['fixed', 1000], ['exponential', 1000], ['exponential', 333], ['exponential', 1]])
  for (let n = 1; n <= 5; n++)
    backoff.push({ type, delay, attemptsMade: n,
      expected: backoffs.calculate({ type, delay }, n, {}, null, null) });

Date.now = realNow;
process.stdout.write(JSON.stringify({ defaults, events, eventsHex, data, dataFloat, scores, scoresJs, backoff }, null, 1) + '\n');
