'use strict';
// ref_render.js IN OUT - renders jobs with mustache.js 4.2.0 for
// test_templates.c, the reference for the shipped templates.
// IN: {"jobs": [{template, partials: {name: text}, data, escape: "html" |
// "none", tidy: null | "subject" | "sms"}]}; OUT: [{out, encoding,
// segments}] where encoding and segments (sms-segments-calculator, Twilio's
// GSM-7 / UCS-2 segment counter) are given for tidy "sms".
// escape "html" escapes exactly & < > " ' (our HTML mode); tidy trims
// spaces, tabs, CR and LF at both ends, and for a subject turns every CR
// or LF inside into a space, as erpq_templates.h says the store does.
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const req = createRequire(path.resolve(__dirname, '../../../tests/interop/package.json'));
const Mustache = req('mustache');
const { SegmentedMessage } = req('sms-segments-calculator');

const ENT = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapes = { html: (s) => String(s).replace(/[&<>"']/g, (c) => ENT[c]), none: (s) => String(s) };

const [inFile, outFile] = process.argv.slice(2);
const { jobs } = JSON.parse(fs.readFileSync(inFile, 'utf8'));
const results = jobs.map((j) => {
  let out = Mustache.render(j.template, j.data, j.partials, { escape: escapes[j.escape] });
  if (j.tidy) out = out.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
  if (j.tidy === 'subject') out = out.replace(/[\r\n]/g, ' ');
  const r = { out };
  if (j.tidy === 'sms') {
    const m = new SegmentedMessage(out, 'auto');
    r.encoding = m.encodingName;
    r.segments = m.segmentsCount;
  }
  return r;
});
fs.writeFileSync(outFile, JSON.stringify(results));
