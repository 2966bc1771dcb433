'use strict';
// The reference side of test_notify_sms: Twilio's sms-segments-calculator
// (npm, pinned in tests/interop/package.json) judges the texts our
// erpq_sms_prepare() produced.
//
// stdin: {"cases":[{"id","text","enc","units","segments","parts":[...]}],
//         "table":[{"cp","to"}], "accepted_table_differences":[cp,...]}
// For each case the calculator gets OUR text (after our mapping) and must
// agree on the encoding, the number of units (septets or UTF-16 units),
// the number of segments and the text of every segment. For the mapping
// table it reports, per entry, what Twilio's "smart encoding" does with the
// same character; any disagreement not listed as accepted is a failure.
// stdout: {"checked":N,"mismatches":[...],"table":{...}}; exit 1 on any
// mismatch.
const path = require('path');
const fs = require('fs');

const src = process.env.ERPQ_SOURCE_DIR;
if (!src) {
  console.error('ERPQ_SOURCE_DIR is not set');
  process.exit(2);
}
const { SegmentedMessage } = require(path.join(src, 'tests/interop/node_modules/sms-segments-calculator'));

const doc = JSON.parse(fs.readFileSync(0, 'utf8'));
const mismatches = [];
let checked = 0;

for (const c of doc.cases || []) {
  const m = new SegmentedMessage(c.text);
  const enc = m.encodingName;
  const bitsPerUnit = enc === 'GSM-7' ? 7 : 16;
  const units = m.messageSize / bitsPerUnit;
  // Array.from: Segment extends Array, and its species constructor would
  // add header placeholders to the arrays that map() creates.
  const parts = m.segments.map((seg) =>
    Array.from(seg).filter((x) => !x.isUserDataHeader).map((x) => x.raw).join(''));
  const theirs = { enc, units, segments: m.segmentsCount, parts };
  const ours = { enc: c.enc, units: c.units, segments: c.segments, parts: c.parts };
  if (JSON.stringify(theirs) !== JSON.stringify(ours)) {
    mismatches.push({ id: c.id, text: c.text, ours, theirs });
  }
  checked++;
}

const table = { same: 0, unmapped_by_twilio: [], accepted_differences: [], differences: [] };
const accepted = new Set(doc.accepted_table_differences || []);
for (const e of doc.table || []) {
  const ch = String.fromCodePoint(e.cp);
  const theirs = new SegmentedMessage(ch, 'auto', true).graphemes.join('');
  const hex = 'U+' + e.cp.toString(16).toUpperCase().padStart(4, '0');
  if (theirs === e.to) table.same++;
  else if (theirs === ch) table.unmapped_by_twilio.push(hex);
  else if (accepted.has(e.cp)) table.accepted_differences.push({ cp: hex, ours: e.to, theirs });
  else table.differences.push({ cp: hex, ours: e.to, theirs });
}
if (table.differences.length) mismatches.push({ table: table.differences });

process.stdout.write(JSON.stringify({ checked, mismatches: mismatches.slice(0, 20), table }) + '\n');
process.exit(mismatches.length ? 1 : 0);
