'use strict';
// gen_cases.js - random Mustache templates and data, rendered by
// mustache.js 4.2.0 (tests/interop/node_modules), written as JSON cases for
// test_mustache_diff.c to render with our engine and compare byte for byte.
//
//   node gen_cases.js --seed N --count N --out FILE
//
// Every case is rendered twice: with Mustache.escape replaced by a function
// escaping exactly what our HTML mode escapes (& < > " '), and with no
// escaping at all (our TEXT mode). The generator is seeded (xorshift32), so
// a seed reproduces the same cases.
//
// Where mustache.js departs from the Mustache spec (which our engine
// follows) a case is not compared but discarded, and counted per reason:
//  - lookups are instrumented: a name whose mustache.js value differs from
//    the spec's resolution (mustache.js retries a broken dotted chain in
//    lower frames) discards the case, and so does {{.}} inside a section on
//    `true` (mustache.js pushes nothing there, the spec pushes true) and an
//    interpolated object or array (mustache.js prints "[object Object]");
//  - two template shapes are rewritten before rendering instead: a line with
//    two or more non-interpolation tags and only whitespace (mustache.js
//    treats it as standalone, the spec's standalone tag is alone on its
//    line) gets a '~', and a partial tag that is the first tag on a line
//    but not standalone gets a comment tag in front of it (mustache.js
//    indents such a partial; the spec indents standalone partials only).
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const root = path.resolve(__dirname, '../../..');
const Mustache = createRequire(path.join(root, 'tests/interop/package.json'))('mustache');

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf('--' + name);
  return i >= 0 ? argv[i + 1] : def;
};
const SEED = Number(opt('seed', '1')) >>> 0;
const COUNT = Number(opt('count', '3000'));
const OUT = opt('out', null);
if (!OUT) throw new Error('--out FILE is required');

let s32 = SEED || 1;
function R() {
  s32 ^= s32 << 13; s32 >>>= 0;
  s32 ^= s32 >>> 17;
  s32 ^= s32 << 5; s32 >>>= 0;
  return s32 / 4294967296;
}
const ri = (n) => Math.floor(R() * n);
const pick = (a) => a[ri(a.length)];
const chance = (p) => R() < p;

// ---------------------------------------------------------------- data ----
const KEYS = ['a', 'b', 'c', 'name', 'item', 'list', 'flag', 'x', 'y', 'user', 'city', 'n',
  'title', 'k1', 'k2', 'tags'];
const WORDS = ['hello', 'wörld', 'शुल्क', 'बकाया', '日本', '🎉', 'Ω', 'ça', 'x', 'Grüße',
  '₹1,200', 'naïve', 'ok'];
const SPECIAL = ['&', '<', '>', '"', "'", '/', '`', '=', '&amp;', '<b>', '"q"', "it's", '\n',
  ' ', '{{x}}', '\t'];

function genString() {
  if (chance(0.1)) return '';
  let s = '';
  const n = 1 + ri(4);
  for (let i = 0; i < n; i++) s += chance(0.4) ? pick(SPECIAL) : pick(WORDS) + (chance(0.3) ? ' ' : '');
  return s;
}
function genReal() {
  for (;;) {
    let x;
    switch (ri(6)) {
      case 0: x = (R() - 0.5) * 10; break;
      case 1: x = R() * Math.pow(10, ri(60) - 30); break;
      case 2: x = -R() * Math.pow(10, ri(600) - 300); break;
      case 3: x = pick([0.1 + 0.2, 1e21, 1e-7, 1e-6, 123e-20, 5e-324, 1.7976931348623157e308,
        2 ** 53 + 2, 1.5, -0.5, 100.25, 1e20, 123456789.125]); break;
      case 4: x = Math.round(R() * 1e6) / 100; break;
      default: x = R();
    }
    // jansson cannot hold integers past int64; JSON writes these without
    // an exponent, so they would not load.
    if (Number.isInteger(x) && Math.abs(x) >= 2 ** 63 && Math.abs(x) < 1e21) continue;
    return x;
  }
}
function genScalar() {
  switch (ri(11)) {
    case 0: case 1: case 2: return genString();
    case 3: return ri(2001) - 1000;
    case 4: return pick([0, 1, -1, 2 ** 53 - 1, -(2 ** 53) + 1, 2 ** 60]);
    case 5: return genReal();
    case 6: return true;
    case 7: return false;
    case 8: return null;
    case 9: return pick(['', 0, []]);
    default: return pick(WORDS);
  }
}
function genObject(depth, nmin) {
  const o = {};
  const n = nmin + ri(4);
  for (let i = 0; i < n; i++) o[pick(KEYS)] = genValue(depth + 1);
  return o;
}
function genValue(depth) {
  if (depth >= 4 || chance(0.45)) return genScalar();
  switch (ri(6)) {
    case 0: case 1: return genObject(depth, 1);
    case 2: { const a = []; for (let i = ri(4); i > 0; i--) a.push(genObject(depth + 1, 1)); return a; }
    case 3: { const a = []; for (let i = ri(5); i > 0; i--) a.push(genScalar()); return a; }
    case 4: { const a = []; for (let i = ri(3); i > 0; i--) a.push([genScalar(), genScalar()]); return a; }
    default: return pick([{}, [], [{}]]);
  }
}

// ------------------------------------------------------------ templates ----
// A template is built as pieces, {t:'text', s} or {t:'tag', kind, s, o, c}
// (o, c: the delimiters in force), so the rewrites above can find lines.
const DELIMS = [['<%', '%>'], ['[[', ']]'], ['<<', '>>'], ['|', '|'], ['(%', '%)'], ['{{', '}}']];
const TEXT = ['hello', ' ', '  ', 'wörld', 'शुल्क', '日本', '🎉', 'a-b', '.', ',', '!', '?', ':',
  ';', "'", '"', '&', '#', '^', '/', '*', 'Ω', 'x', 'ok', '\t'];
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const sp = () => (chance(0.2) ? ' ' : '');
const nl = () => (chance(0.15) ? '\r\n' : '\n');

function text(s) { return { t: 'text', s }; }
function genText() {
  let s = '';
  for (let n = 1 + ri(3); n > 0; n--) s += pick(TEXT);
  return s;
}

// A name to look up; for an interpolation (scalar set) one that is likely
// to hold a scalar, since objects and arrays print differently.
function pickName(scope, scalar) {
  const r = R();
  const top = scope[scope.length - 1 - ri(Math.min(scope.length, 3))];
  if (r < 0.06 && !(scalar && top !== null && typeof top === 'object')) return '.';
  if (r < 0.75 && isObj(top) && Object.keys(top).length) {
    let keys = Object.keys(top);
    if (scalar && chance(0.9)) {
      const flat = keys.filter((k) => top[k] === null || typeof top[k] !== 'object' || isObj(top[k]));
      if (flat.length) keys = flat;
    }
    let k = pick(keys);
    let v = top[k];
    while (isObj(v) && Object.keys(v).length && (scalar || chance(0.35))) {
      const k2 = pick(Object.keys(v));
      k += '.' + k2;
      v = v[k2];
    }
    return k;
  }
  return chance(0.3) ? pick(KEYS) + '.' + pick(KEYS) : pick(KEYS);
}
// What a section on name would push, in the generator's rough model.
function resolve(scope, name) {
  if (name === '.') return scope[scope.length - 1];
  const parts = name.split('.');
  for (let i = scope.length - 1; i >= 0; i--) {
    if (isObj(scope[i]) && Object.prototype.hasOwnProperty.call(scope[i], parts[0])) {
      let v = scope[i][parts[0]];
      for (let k = 1; k < parts.length; k++) {
        if (!isObj(v) || !Object.prototype.hasOwnProperty.call(v, parts[k])) return undefined;
        v = v[parts[k]];
      }
      return v;
    }
  }
  return undefined;
}

function tag(g, kind, body) {
  const [o, c] = g.delims;
  let s;
  if (kind === '{') s = o + '{' + sp() + body + sp() + '}' + c;
  else if (kind === 'name') s = o + sp() + body + sp() + c;
  else s = o + (chance(0.05) ? ' ' : '') + kind + sp() + body + sp() + c;
  return { t: 'tag', kind, s, o, c };
}
// Emits a block tag, often alone on its own (indented) line.
function blockTag(g, out, t) {
  const alone = chance(0.55);
  if (alone) {
    const last = out.length ? out[out.length - 1] : null;
    if (last && !(last.t === 'text' && /\n$/.test(last.s))) out.push(text(nl()));
    if (chance(0.5)) out.push(text(pick([' ', '  ', '\t', '    ', ' \t'])));
  }
  out.push(t);
  if (alone) {
    if (chance(0.3)) out.push(text(pick([' ', '\t', '  '])));
    if (!chance(0.05)) out.push(text(nl()));
  }
}

function genSeq(g, scope, depth, out) {
  for (let n = 1 + ri(depth ? 4 : 7); n > 0; n--) {
    const k = R();
    if (k < 0.22) out.push(text(genText()));
    else if (k < 0.32) out.push(text(nl() + (chance(0.3) ? '  ' : '')));
    else if (k < 0.47) {
      const kind = pick(['name', 'name', 'name', '&', '{']);
      out.push(tag(g, kind, pickName(scope, true)));
    } else if (k < 0.63 && depth < 4) {
      const name = pickName(scope, false);
      const inv = chance(0.3);
      blockTag(g, out, tag(g, inv ? '^' : '#', name));
      const v = resolve(scope, name);
      let inner = scope;
      if (!inv && v !== undefined && v !== true) {
        inner = scope.concat([Array.isArray(v) ? (v.length ? pick(v) : undefined) : v]);
      }
      genSeq(g, inner, depth + 1, out);
      blockTag(g, out, tag(g, '/', name));
    } else if (k < 0.71) {
      const body = chance(0.15) ? ' note\nspanning lines ' : pick([' c ', 'note', ' a comment ']);
      blockTag(g, out, tag(g, '!', body));
    } else if (k < 0.77) {
      const d = pick(DELIMS);
      blockTag(g, out, tag(g, '=', d[0] + ' ' + d[1] + sp() + '='));
      g.delims = d;
    } else if (k < 0.87 && g.partials.length) {
      blockTag(g, out, tag(g, '>', pick(g.partials)));
    } else {
      out.push(text(pick([' ', '  ', '\t', '']) + genText()));
    }
  }
}

// The two rewrites (see the top of the file), on one template's pieces.
function rewrite(pieces) {
  const lines = [];
  let line = { tags: [], nonSpace: false };
  const ends = []; // [piece index, offset] of each line end
  pieces.forEach((p, i) => {
    if (p.t === 'tag') {
      line.tags.push(i);
      if (p.kind === 'name' || p.kind === '&' || p.kind === '{') line.nonSpace = true;
      return;
    }
    for (let j = 0; j < p.s.length; j++) {
      const ch = p.s[j];
      if (ch === '\n') {
        lines.push(line);
        ends.push([i, j > 0 && p.s[j - 1] === '\r' ? j - 1 : j]);
        line = { tags: [], nonSpace: false };
      } else if (ch !== ' ' && ch !== '\t' && ch !== '\r') {
        line.nonSpace = true;
      }
    }
  });
  lines.push(line);
  ends.push([pieces.length - 1, pieces.length ? (pieces[pieces.length - 1].s || '').length : 0]);
  const insertText = new Map(); // piece index -> [[offset, text]]
  const before = new Map(); // piece index -> tag piece to insert before it
  lines.forEach((ln, li) => {
    if (ln.tags.length >= 2 && !ln.nonSpace) {
      const [pi, off] = ends[li];
      const p = pieces[pi];
      if (p && p.t === 'text') {
        if (!insertText.has(pi)) insertText.set(pi, []);
        insertText.get(pi).push([off, '~']);
      } else {
        pieces.push(text('~')); // the template ends with a tag
      }
      ln.nonSpace = true;
    }
    const first = ln.tags.length ? pieces[ln.tags[0]] : null;
    const standalone = ln.tags.length === 1 && !ln.nonSpace;
    if (first && first.kind === '>' && !standalone) {
      before.set(ln.tags[0], { t: 'tag', kind: '!', s: first.o + '!x' + first.c });
    }
  });
  let s = '';
  pieces.forEach((p, i) => {
    if (before.has(i)) s += before.get(i).s;
    if (p.t === 'text' && insertText.has(i)) {
      let t = p.s;
      for (const [off, ins] of insertText.get(i).sort((a, b) => b[0] - a[0])) {
        t = t.slice(0, off) + ins + t.slice(off);
      }
      s += t;
    } else {
      s += p.s;
    }
  });
  return s;
}

function genTemplate(scope, partials, depth) {
  const g = { delims: ['{{', '}}'], partials };
  const out = [];
  genSeq(g, scope, depth, out);
  return rewrite(out);
}

// A tree rendered by a partial that includes itself through the data.
function genTree(depth) {
  const node = { content: pick(WORDS), nodes: [] };
  if (depth < 4) for (let i = ri(3); i > 0; i--) node.nodes.push(genTree(depth + 1));
  return node;
}
function treeCase() {
  const layouts = [
    '{{content}}<{{#nodes}}{{>node}}{{/nodes}}>',
    '{{content}}\n{{#nodes}}\n  {{>node}}\n{{/nodes}}\n',
    '- {{content}}\n  {{#nodes}}\n  {{> node }}\n  {{/nodes}}\n',
    '{{content}}\r\n\t{{#nodes}}\r\n\t{{>node}}\r\n\t{{/nodes}}\r\n',
  ];
  return { template: pick(['{{>node}}', 'tree:\n  {{>node}}\nend\n', '{{>node}}\n']),
    partials: { node: pick(layouts) }, data: genTree(0) };
}
function numbersCase() {
  const nums = [];
  for (let i = 0; i < 200; i++) nums.push(chance(0.8) ? genReal() : ri(1e9) - 5e8);
  return { template: '{{#nums}}{{.}};{{/nums}}', partials: {}, data: { nums } };
}

// ------------------------------------------------- mustache.js, watched ----
let divergent = null;
const { Context, Writer } = Mustache;
const origLookup = Context.prototype.lookup;
const inTrue = new Map();
const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
function specLookup(ctx, name) {
  if (name === '.') return ctx.view;
  const parts = name.split('.');
  let c = ctx;
  while (c && !(isObj(c.view) && hasOwn(c.view, parts[0]))) c = c.parent;
  if (!c) return undefined;
  let v = c.view[parts[0]];
  for (let i = 1; i < parts.length; i++) {
    if (!isObj(v) || !hasOwn(v, parts[i])) return undefined;
    v = v[parts[i]];
  }
  return v;
}
Context.prototype.lookup = function lookup(name) {
  const v = origLookup.call(this, name);
  if (specLookup(this, name) !== v) divergent = divergent || 'dotted name resolved in a lower frame';
  if (name === '.' && inTrue.get(this)) divergent = divergent || '{{.}} in a section on true';
  return v;
};
const origSection = Writer.prototype.renderSection;
Writer.prototype.renderSection = function renderSection(token, context, ...rest) {
  if (origLookup.call(context, token[1]) !== true) return origSection.call(this, token, context, ...rest);
  inTrue.set(context, (inTrue.get(context) || 0) + 1);
  try {
    return origSection.call(this, token, context, ...rest);
  } finally {
    inTrue.set(context, inTrue.get(context) - 1);
  }
};
for (const fn of ['escapedValue', 'unescapedValue']) {
  const orig = Writer.prototype[fn];
  Writer.prototype[fn] = function (token, context, ...rest) {
    const v = origLookup.call(context, token[1]);
    if (v !== null && typeof v === 'object') divergent = divergent || 'object or array interpolated';
    return orig.call(this, token, context, ...rest);
  };
}
const ENT = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const htmlEscape = (s) => String(s).replace(/[&<>"']/g, (c) => ENT[c]);
const noEscape = (s) => String(s);

// ----------------------------------------------------------------- main ----
const cases = [];
const discarded = {};
let errors = 0;
while (cases.length < COUNT) {
  let c;
  const kind = R();
  if (kind < 0.01) c = numbersCase();
  else if (kind < 0.05) c = treeCase();
  else {
    const data = genObject(0, 4);
    const names = [];
    for (let i = ri(4); i > 0; i--) names.push('p' + names.length);
    const partials = {};
    names.forEach((n, i) => {
      partials[n] = genTemplate([data], names.slice(i + 1).concat(chance(0.2) ? ['nope'] : []), 1);
    });
    const template = genTemplate([data], names.concat(chance(0.1) ? ['nope'] : []), 0);
    c = { template, partials, data };
  }
  divergent = null;
  let html;
  let text;
  try {
    Mustache.escape = htmlEscape;
    html = Mustache.render(c.template, c.data, c.partials);
    Mustache.escape = noEscape;
    text = Mustache.render(c.template, c.data, c.partials);
  } catch (e) {
    // A template mustache.js cannot parse is a case for our parser to
    // refuse too; a crash while rendering (mustache.js reads members of a
    // null list element) is not comparable.
    let parses = true;
    try {
      for (const t of [c.template, ...Object.values(c.partials)]) Mustache.parse(t);
    } catch (e2) {
      parses = false;
    }
    if (parses) {
      const why = 'mustache.js threw while rendering';
      discarded[why] = (discarded[why] || 0) + 1;
      continue;
    }
    errors++;
    cases.push({ id: cases.length, ...c, error: String(e.message || e) });
    continue;
  }
  if (divergent) {
    discarded[divergent] = (discarded[divergent] || 0) + 1;
    continue;
  }
  cases.push({ id: cases.length, ...c, html, text });
}
fs.writeFileSync(OUT, JSON.stringify({ seed: SEED, count: cases.length, errors, discarded, cases }));
console.log(`gen_cases: seed ${SEED}: ${cases.length} cases (${errors} mustache.js errors), discarded ${JSON.stringify(discarded)}`);
