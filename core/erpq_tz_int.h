/*
 * erpq_tz_int.h - what erpq_tz.c (zone objects, TZif files, POSIX rules)
 * shares with erpq_tz_names.c (names, the cache, the preload) and with no
 * other module.
 */
#ifndef ERPQ_TZ_INT_H
#define ERPQ_TZ_INT_H

#include <stddef.h>

#include "erpq_tz.h"

/* A new zone named name that shares the transition tables of src (no copy:
 * the alias holds a reference to the zone that owns them, so src may be
 * freed first). A new reference owned by the caller, or NULL when memory
 * ran out. */
erpq_tz *erpq_tz_alias(erpq_tz *src, const char *name);

/* The heap bytes tz holds on its own: the object and its name, plus its
 * tables unless it is an alias (for the preload's memory figure). */
size_t erpq_tz_table_bytes(const erpq_tz *tz);

#endif
