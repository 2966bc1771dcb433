/*
 * erpq_cmd.h - a Redis command under construction, as an argument vector.
 *
 * The protocol layer (erpq_bull.c) fills an erpq_cmd and never sends it:
 * the asynchronous worker hands it to redisAsyncCommandArgv() and the
 * synchronous CLI to redisCommandArgv(). Arguments are copied into one
 * growing buffer, so building a command costs a handful of allocations.
 *
 * Lifecycle: erpq_cmd_init() -> erpq_cmd_push*() ... -> erpq_cmd_argv() to
 * read it (valid until the next push) -> erpq_cmd_free(). A failed push
 * marks the command as failed (err = -ENOMEM); later pushes are ignored and
 * erpq_cmd_argv() reports the error, so builders check once at the end.
 */
#ifndef ERPQ_CMD_H
#define ERPQ_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_scripts.h"

typedef struct erpq_cmd {
  char *buf;          /* All arguments, back to back. */
  size_t used, cap;   /* Bytes used and allocated in buf. */
  size_t *offs;       /* Start of each argument in buf. */
  size_t *lens;       /* Length of each argument. */
  const char **ptrs;  /* Filled by erpq_cmd_argv(). */
  int argc, argcap;
  int err;            /* 0, or -ENOMEM after a failed push. */
  int nkeys_at;       /* Index of the numkeys argument of a script call. */
  erpq_lua_id script; /* The script of a script call. */
  int is_script;
} erpq_cmd;

void erpq_cmd_init(erpq_cmd *c);
void erpq_cmd_free(erpq_cmd *c);
/* Forgets the arguments but keeps the memory, for reuse. */
void erpq_cmd_reset(erpq_cmd *c);

void erpq_cmd_push(erpq_cmd *c, const char *s, size_t len);
void erpq_cmd_push_str(erpq_cmd *c, const char *s); /* NULL pushes "". */
void erpq_cmd_push_i64(erpq_cmd *c, int64_t v);
void erpq_cmd_pushf(erpq_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts "EVALSHA <sha> <nkeys>" for a script; the keys and arguments
 * follow with the push functions. */
void erpq_cmd_script(erpq_cmd *c, erpq_lua_id id, int nkeys);

/* The same, followed by the n keys (borrowed strings). */
void erpq_cmd_script_keys(erpq_cmd *c, erpq_lua_id id, const char *const *keys, int n);

/* Turns a script call into "EVAL <source> ..." for the NOSCRIPT fallback. */
void erpq_cmd_use_eval(erpq_cmd *c);

/* Points *argv and *lens at the arguments (owned by c, valid until the next
 * push or free) and returns argc, or c->err if a push failed. */
int erpq_cmd_argv(erpq_cmd *c, const char ***argv, const size_t **lens);

#endif
