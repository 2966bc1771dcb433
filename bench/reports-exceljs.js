'use strict';
// bench/reports-exceljs.js OUT.xlsx < rows.tsv
// The XLSX a Node backend would stream with exceljs's
// stream.xlsx.WorkbookWriter, for bench/reports.sh: reads the fee-collection
// rows as `mariadb --batch --quick` prints them (tab-separated, a header
// line, \t \n \\ escaped) from stdin and writes the same sheet as the
// reports job: typed cells (a date-time, money as numbers with a currency
// format), a bold frozen header, an autofilter, column widths, totals per
// method and a grand total at the end, one row committed at a time.
// Prints {"rows", "maxRssKiB", "ms"} on stderr.
const readline = require('node:readline');
const ExcelJS = require('exceljs');

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: reports-exceljs.js OUT.xlsx < rows.tsv\n');
  process.exit(2);
}

function unescape(s) {
  return s.replace(/\\(.)/g, (_, c) => ({ t: '\t', n: '\n', 0: '\0', '\\': '\\' }[c] ?? c));
}

const LABELS = { cash: 'Cash', card: 'Card', upi: 'UPI', bank_transfer: 'Bank transfer', cheque: 'Cheque', online: 'Online' };
const IST_MS = (5 * 60 + 30) * 60 * 1000; // the bench school's zone, Asia/Kolkata

async function main() {
  const t0 = Date.now();
  const wb = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: out, useStyles: true, useSharedStrings: false });
  const ws = wb.addWorksheet('Report', { views: [{ state: 'frozen', ySplit: 1 }] });
  ws.columns = [
    { header: 'Paid at', width: 20, style: { numFmt: 'yyyy-mm-dd hh:mm:ss' } },
    { header: 'Receipt', width: 14 }, { header: 'Admission no.', width: 14 },
    { header: 'Student', width: 28 }, { header: 'Class', width: 12 }, { header: 'Fee head', width: 20 },
    { header: 'Period', width: 9 }, { header: 'Method', width: 14 },
    { header: 'Amount (INR)', width: 14, style: { numFmt: '[$\u20b9-4009] #,##,##0.00' } },
  ];
  ws.getRow(1).font = { bold: true };
  ws.autoFilter = 'A1:I1';
  const sums = new Map();
  let total = 0n;
  let rows = 0;
  let header = true;
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (header) { header = false; continue; }
    const f = line.split('\t').map(unescape);
    // paid_at is UTC: the sheet shows the school's local time, as a date.
    const paid = new Date(Date.parse(f[0].replace(' ', 'T') + 'Z') + IST_MS);
    const minor = BigInt(f[8]);
    total += minor;
    sums.set(f[7], (sums.get(f[7]) ?? 0n) + minor);
    ws.addRow([paid, f[1], f[2], f[3], f[4], f[5], f[6], LABELS[f[7]] ?? f[7], Number(minor) / 100]).commit();
    rows += 1;
  }
  ws.addRow([]).commit();
  const last = rows + 1;
  for (const [m, s] of sums) {
    ws.addRow([`Total (${LABELS[m] ?? m})`, null, null, null, null, null, null, null,
      { formula: `SUMIF(H2:H${last},"${LABELS[m] ?? m}",I2:I${last})`, result: Number(s) / 100 }]).commit();
  }
  ws.addRow(['Grand total', null, null, null, null, null, null, null,
    { formula: `SUM(I2:I${last})`, result: Number(total) / 100 }]).commit();
  ws.commit();
  await wb.commit();
  process.stderr.write(`${JSON.stringify({ rows, maxRssKiB: process.resourceUsage().maxRSS, ms: Date.now() - t0 })}\n`);
}

main().catch(e => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
