/*
 * erpq_tz.h - time zones read from the system zoneinfo database.
 *
 * A zone (erpq_tz) is an immutable table that maps an instant (seconds since
 * the epoch, UTC) to the offset of local time from UTC.  It is built from a
 * TZif file (versions 1, 2 and 3, as /usr/share/zoneinfo ships them, "fat" or
 * "slim"): a sorted list of transition instants, each pointing at a local
 * time type, plus, in version 2 and later, a POSIX TZ rule string (the
 * footer) that governs every instant after the last transition.  A zone can
 * also be a fixed offset (UTC itself, luxon-style "UTC+3" specifiers, or a
 * number of minutes).  Leap-second records are ignored, as JavaScript does.
 *
 * Once loaded, a zone never changes, so it may be shared between threads
 * without locking.  Zones are reference counted: erpq_tz_load() returns a
 * new reference that the caller owns and must release with erpq_tz_free().
 * Loaded zones are kept in a process-wide cache (guarded by a mutex), so
 * loading the same name twice reads the file once; the cache holds its own
 * reference, so a cached zone stays alive until erpq_tz_cache_flush().
 *
 * The cache has two states.  Open (at start, and after
 * erpq_tz_cache_flush()): a name not cached yet is read from its file on
 * first use, as a CLI or a test wants.  Sealed (after erpq_tz_preload(),
 * which a program with an event loop calls before the loop runs): every
 * zone of the zoneinfo directory (all of its TZif files except the right/
 * and posix/ copies and the "localtime" link) and the local zone are in
 * the cache, and erpq_tz_load() never touches the disk again: a name that
 * is not cached is "unknown time zone" (-ENOENT), as a missing file was
 * before.  A name in another letter case becomes an alias of the cached
 * zone (memory only, not cached).  Files that are links of one another
 * (US/Eastern and America/New_York) share one table.  Measured on Debian
 * 12's tzdata 2025b: 599 names from 447 files (152 links), about 10 ms of
 * CPU (10-60 ms of wall time on a busy 2-CPU machine with the files in the
 * page cache, about 300 ms with a cold cache), about 0.45 MB of heap.
 *
 * Names are IANA names relative to the zoneinfo directory ($TZDIR if set,
 * else /usr/share/zoneinfo).  As in luxon (and ICU), "UTC" and "GMT" are
 * recognised in any letter case, "local", "system" and "default" mean the
 * process's local zone, "UTC+5", "UTC-03:30" are fixed offsets, and an IANA
 * name whose letter case does not match a file is looked up case-blind.
 * Names containing ".." or starting with "/" are refused.  The local zone is
 * the TZ environment variable when set (a zone name, ":name", ":/path" or a
 * POSIX rule such as "EST5EDT,M3.2.0,M11.1.0"; an empty TZ means UTC), else
 * /etc/localtime, else UTC; it is worked out on first use and cached like
 * any other zone, so a later change of TZ is only seen after
 * erpq_tz_cache_flush().
 *
 * The module also carries the proleptic Gregorian calendar helpers that the
 * cron and repeat code share.  All offsets are in seconds east of UTC.
 */
#ifndef ERPQ_TZ_H
#define ERPQ_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct erpq_tz erpq_tz;

/* Loads a zone by name (see above; NULL or "" is the local zone).  On success
 * *out receives a new reference owned by the caller.  An unknown name fails
 * with -ENOENT and a message naming the zone; a malformed file with
 * -EINVAL; a refused name with ERPQ_E_ARG. */
int erpq_tz_load(const char *name, erpq_tz **out, char *err, size_t errlen);

/* Loads a zone from a TZif file at an explicit path, under the given display
 * name (NULL: the path).  Not cached.  *out is a new caller-owned reference. */
int erpq_tz_load_file(const char *path, const char *name, erpq_tz **out,
                      char *err, size_t errlen);

/* Builds a zone from a POSIX TZ rule string such as "CET-1CEST,M3.5.0,
 * M10.5.0/3".  Not cached.  *out is a new caller-owned reference. */
int erpq_tz_from_posix(const char *rule, erpq_tz **out, char *err,
                       size_t errlen);

/* Returns a fixed-offset zone (offset in seconds east of UTC, within +-24
 * hours).  *out is a new caller-owned reference. */
int erpq_tz_fixed(int32_t offset_seconds, erpq_tz **out, char *err,
                  size_t errlen);

/* Returns the UTC zone.  Never fails; the pointer is a static zone that
 * needs no erpq_tz_free() (calling it is harmless). */
const erpq_tz *erpq_tz_utc(void);

/* Takes one more reference to tz and returns it. */
erpq_tz *erpq_tz_ref(erpq_tz *tz);

/* Drops one reference; the zone is freed with the last one.  NULL is fine. */
void erpq_tz_free(erpq_tz *tz);

/* Drops the cache's references to every cached zone (for leak checkers)
 * and opens the cache again (see above). */
void erpq_tz_cache_flush(void);

/* What one erpq_tz_preload() did. */
typedef struct {
  size_t zones;      /* Names now cached. */
  size_t files;      /* TZif files read and parsed. */
  size_t aliases;    /* Names that share the table of another file (links). */
  size_t skipped;    /* Files that are not TZif zones (zone.tab, tzdata.zi). */
  size_t file_bytes; /* Bytes of the files parsed. */
  size_t bytes;      /* Heap the cached zones hold (objects, names, tables). */
  int64_t micros;    /* Wall time of the preload. */
} erpq_tz_preload_stats;

/* Loads every zone of the zoneinfo directory and the local zone into the
 * cache, then seals it (see above).  Call it once, before any event loop
 * runs, from one thread; lookups may run concurrently but would then
 * still read files until it returns.  stats may be NULL.  Returns 0, or a
 * negative error (the directory cannot be read: -errno; -ENOMEM) with err
 * set; the cache is sealed in either case, holding what was loaded. */
int erpq_tz_preload(erpq_tz_preload_stats *stats, char *err, size_t errlen);

/* The name the zone was loaded under.  The string belongs to the zone. */
const char *erpq_tz_name(const erpq_tz *tz);

/* Offset of local time from UTC, in seconds, at the given instant. */
int erpq_tz_offset_at(const erpq_tz *tz, int64_t utc_seconds);

/* The same for an instant in milliseconds (the offset of its whole second). */
int erpq_tz_offset_at_ms(const erpq_tz *tz, int64_t utc_ms);

/* Converts a local wall-clock time (milliseconds since the epoch as if the
 * wall clock were UTC) to a UTC instant, choosing between the two readings
 * of a repeated time by the guess offset, and moving a time that does not
 * exist (skipped by a forward transition) past the gap.  This is exactly
 * luxon's fixOffset(), which cron-parser relies on.  If offset_out is not
 * NULL it receives the offset of the result. */
int64_t erpq_tz_local_to_utc(const erpq_tz *tz, int64_t local_ms,
                             int32_t guess_offset, int32_t *offset_out);

/* Days since 1970-01-01 of a proleptic Gregorian date.  The month may run
 * outside 1..12 and the day outside the month; both roll over as in
 * JavaScript's Date.UTC(). */
int64_t erpq_days_from_civil(int64_t year, int64_t month, int64_t day);

/* The date of a day number (inverse of erpq_days_from_civil). */
void erpq_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/* Number of days in a month (1..12) of a year. */
int erpq_days_in_month(int64_t year, int month);

/* Floor division and modulo for the calendar arithmetic (b > 0). */
int64_t erpq_floor_div(int64_t a, int64_t b);
int64_t erpq_floor_mod(int64_t a, int64_t b);

#endif
