'use strict';
// js_numbers.js IN OUT - JavaScript's String(number) for every line of IN
// (a decimal that reads back as one double), one per line into OUT: the
// reference for how erpq_mustache prints reals.
const fs = require('fs');
const [inFile, outFile] = process.argv.slice(2);
const lines = fs.readFileSync(inFile, 'utf8').split('\n').filter((l) => l.length);
fs.writeFileSync(outFile, lines.map((l) => String(Number(l))).join('\n') + '\n');
