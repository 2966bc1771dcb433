/*
 * erpq_report_text.h - UTF-8 decoding and repair for the report writers.
 *
 * Report cells come from the database as bytes that are meant to be UTF-8
 * but are not always (a latin1 column, a truncated VARCHAR cut in the middle
 * of a character). Every writer needs valid UTF-8: XLSX is XML and a bad
 * byte corrupts the whole sheet, Python's csv module and Excel mis-decode
 * a CSV, libharu's UTF-8 encoder silently skips bytes. So text is checked
 * once, in the writer front (erpq_report_writer.c), and repaired when bad:
 * every ill-formed sequence (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF) becomes one U+FFFD REPLACEMENT CHARACTER per
 * "maximal subpart" (Unicode 15 section 3.9, the practice Python's
 * bytes.decode(errors="replace") and the WHATWG decoder follow), and the
 * count is reported.
 *
 * Display width (erpq_cp_columns) is the number of fixed-width columns a
 * code point takes in a spreadsheet-like view: 0 for combining marks and
 * zero-width characters, 2 for East Asian wide/fullwidth and emoji, 1
 * otherwise; the XLSX writer sizes columns with it. It is an estimate
 * (no full East Asian Width table), not a contract.
 *
 * Everything here is stateless and thread-safe.
 */
#ifndef ERPQ_REPORT_TEXT_H
#define ERPQ_REPORT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_buf.h"
#include "erpq_utf8.h" /* The decoder (core); this file adds repair and widths. */

/* Appends s[0..n) to b with every maximal subpart of an ill-formed
 * sequence replaced by U+FFFD.
 * Returns the number of replacements. */
size_t erpq_utf8_repair(erpq_buf *b, const char *s, size_t n);

/* Display columns of one code point: 0, 1 or 2 (see above). */
int erpq_cp_columns(uint32_t cp);

/* Display columns of a well-formed UTF-8 string. */
size_t erpq_utf8_columns(const char *s, size_t n);

/* Length in bytes of the longest prefix of the well-formed UTF-8 string
 * s[0..n) that holds at most max_cp code points (cut on a boundary). */
size_t erpq_utf8_prefix(const char *s, size_t n, size_t max_cp);

#endif
