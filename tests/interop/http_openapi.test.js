'use strict';
// schemas/openapi.yaml is a valid OpenAPI 3 document (swagger-parser validates
// it against the OpenAPI 3.0 schema and resolves every $ref), and it
// describes every route the server has.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const SwaggerParser = require('@apidevtools/swagger-parser');

const ROOT = process.env.ERPQ_SOURCE_DIR || path.join(__dirname, '..', '..');
const SPEC = path.join(ROOT, 'schemas', 'openapi.yaml');

test('openapi.yaml validates', async () => {
  const api = await SwaggerParser.validate(SPEC);
  assert.match(api.openapi, /^3\./);
});

test('openapi.yaml lists every route of the server (erpq_http_metrics.c) with its method', async () => {
  const api = await SwaggerParser.dereference(SPEC);
  const src = fs.readFileSync(path.join(ROOT, 'producer', 'erpq_http_metrics.c'), 'utf8');
  const names = src.match(/route_names\[R_COUNT\] = \{([\s\S]*?)\};/)[1].match(/"([^"]*)"/g).map(s => s.slice(1, -1));
  const methods = src.match(/route_methods\[R_COUNT\] = \{([\s\S]*?)\};/)[1].match(/"([^"]*)"/g).map(s => s.slice(1, -1));
  for (let i = 1; i < names.length; i++) {
    const p = api.paths[names[i]];
    assert.ok(p, `${names[i]} is missing`);
    assert.ok(p[methods[i].toLowerCase()], `${methods[i]} ${names[i]} is missing`);
  }
  for (const [p, ops] of Object.entries(api.paths)) {
    for (const m of Object.keys(ops).filter(k => k !== 'parameters')) {
      assert.ok(names.some((n, i) => n === p && methods[i] === m.toUpperCase()), `${m} ${p} is not served`);
    }
  }
});
