/*
 * erpq_cron.h - cron expressions, evaluated exactly as cron-parser 4.9 does.
 *
 * Bull computes the next run of a repeatable job with cron-parser 4.9
 * (parseExpression(expr, {currentDate, tz, endDate}).next()).  Workers in C
 * and Node share one schedule, so this module reproduces that library's
 * results, quirks included, rather than some other cron dialect:
 *
 *  - One to six fields, seconds first when there are six; missing leading
 *    fields default to "0" (second) and "*" (the others).  An empty
 *    expression is "0 * * * * *".  "@yearly", "@monthly", "@weekly",
 *    "@daily" and "@hourly" are accepted when they are the whole string.
 *  - Lists, ranges, steps ("*" + "/5", "10-40/7", and "5/15" meaning 5-max/15),
 *    "?" as "*", month and weekday names (any three-letter run is replaced,
 *    case-blind), weekday 7 for Sunday, "L" in day of month (last day),
 *    "nL" in day of week (last weekday n of the month) and "n#k" (k-th
 *    weekday n; the "#k" then applies to the whole expression).
 *  - Day of month and day of week are combined as cron-parser does: with
 *    both restricted, either may match; a field counts as unrestricted when
 *    it lists at least as many values as the month has days (or all eight
 *    weekday values 0-7), duplicates included.
 *  - The search walks the calendar in the given zone with the same steps
 *    (next month, next day, next hour, ...) and the same daylight-saving
 *    adjustments as cron-parser on top of luxon, and gives up, as it does,
 *    after 10000 steps; an expression that can never match (31 April)
 *    therefore has no next time rather than looping.
 *  - next() is strictly later than the start: when the start instant itself
 *    matches (milliseconds ignored), the following match is returned.
 *    Results always fall on a whole second.
 *
 * A parsed expression (erpq_cron) is immutable and may be shared between
 * threads.  The caller owns what erpq_cron_parse() returns and releases it
 * with erpq_cron_free(); zones are borrowed for the duration of a call.
 */
#ifndef ERPQ_CRON_H
#define ERPQ_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_tz.h"

typedef struct erpq_cron erpq_cron;

/* Options of a search, as cron-parser's options object. */
typedef struct erpq_cron_opts {
  const erpq_tz *tz;   /* Zone of the fields; NULL means the local zone. */
  int has_end;         /* Whether end_ms bounds the search (endDate). */
  int64_t end_ms;      /* A result may equal but not pass this instant. */
  int nth_day_of_week; /* cron-parser's nthDayOfWeek option; a "#k" in the
                          expression overrides it.  0 means none. */
} erpq_cron_opts;

/* Parses expr.  On success *out is a new expression owned by the caller.
 * A malformed expression fails with -EINVAL and cron-parser's message. */
int erpq_cron_parse(const char *expr, erpq_cron **out, char *err, size_t errlen);

/* Releases an expression.  NULL is fine. */
void erpq_cron_free(erpq_cron *cron);

/* The next matching instant strictly after after_ms in zone tz (NULL: the
 * local zone), in milliseconds.  Returns 0, or -ENOENT when there is none
 * (cron-parser's loop limit, e.g. "0 0 31 4,6 *"), or -EINVAL when
 * cron-parser's next() would throw for another reason (a day-of-week "L"
 * without a weekday). */
int erpq_cron_next(const erpq_cron *cron, const erpq_tz *tz, int64_t after_ms,
                   int64_t *next_ms);

/* The same with an end date and the nthDayOfWeek option: -ENOENT also when
 * the search passes opts->end_ms ("Out of the timespan range"). */
int erpq_cron_next_opts(const erpq_cron *cron, const erpq_cron_opts *opts,
                        int64_t after_ms, int64_t *next_ms);

/* The expression as given to erpq_cron_parse().  Owned by the expression. */
const char *erpq_cron_source(const erpq_cron *cron);

/* JavaScript's Number(string) for an ASCII string: NaN when JS would give
 * NaN.  Shared with the repeat module. */
double erpq_js_string_to_number(const char *s, size_t len);

/* JavaScript's String(number) into buf (at least 32 bytes). */
void erpq_js_number_to_string(double v, char *buf, size_t buflen);

#endif
