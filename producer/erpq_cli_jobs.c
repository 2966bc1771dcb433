/* erpq_cli_jobs.c - seeing what happened: `list` (the jobs of one state,
 * newest first) and `logs` (a job's log lines). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_cli.h"
#include "erpq_cli_private.h"
#include "erpq_err.h"

/* How many entries of a state list looks at for its page: all of them up
 * to this (the state structures are read newest first). */
#define LIST_SCAN_MAX 100000

/* "2026-12-02 05:27:03" in UTC for a millisecond timestamp, "-" for none. */
static void when(const json_t *ms, char *out, size_t outlen) {
  if (!json_is_integer(ms)) {
    snprintf(out, outlen, "-");
    return;
  }
  time_t t = (time_t)(json_integer_value(ms) / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm);
}

/* One line of the table: id, name, attempts, when it last moved, and the
 * failure reason (cut) for failed jobs. */
static void print_row(const json_t *v) {
  const char *id = json_string_value(json_object_get(v, "id"));
  const char *name = json_string_value(json_object_get(v, "name"));
  const json_t *fin = json_object_get(v, "finishedOn"), *proc = json_object_get(v, "processedOn");
  char ts[32];
  when(json_is_integer(fin) ? fin : json_is_integer(proc) ? proc : json_object_get(v, "timestamp"),
       ts, sizeof ts);
  const json_t *am = json_object_get(v, "attemptsMade");
  const char *reason = json_string_value(json_object_get(v, "failedReason"));
  printf("%-12s %-24s %3" JSON_INTEGER_FORMAT "  %-19s  %.100s\n", id ? id : "?", name ? name : "?",
         json_is_integer(am) ? json_integer_value(am) : 0, ts, reason ? reason : "");
}

int erpq_cli_list(const erpq_cli *cli, const char *queue, const char *state, int64_t limit,
                  int as_json) {
  if (!erpq_bull_list_state_ok(state)) {
    erpq_cli_error("--state must be waiting, paused, active, delayed, completed or failed, got '%s'",
                   state);
    return ERPQ_EXIT_USAGE;
  }
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_list(&c, &ss.k, state, limit, NULL, LIST_SCAN_MAX);
  redisReply *r = NULL;
  ex = cli_run(&ss, &c, &r);
  erpq_cmd_free(&c);
  if (!ex) {
    json_t *arr = erpq_bull_parse_list(r);
    if (!arr) {
      ex = cli_unexpected("the list script");
    } else if (as_json) {
      cli_print_json(arr);
    } else {
      printf("%-12s %-24s %3s  %-19s  %s\n", "ID", "NAME", "TRY", "WHEN (UTC)",
             !strcmp(state, "failed") ? "REASON" : "");
      size_t i;
      json_t *v;
      json_array_foreach(arr, i, v) print_row(v);
      if (!json_array_size(arr)) printf("(no %s jobs in %s)\n", state, queue);
      fflush(stdout);
    }
    json_decref(arr);
    freeReplyObject(r);
  }
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_logs(const erpq_cli *cli, const char *queue, const char *id, int as_json) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  redisReply *st = NULL;
  const char *state = NULL;
  ex = cli_read_existing_state(&ss, id, &st, &state);
  if (st) freeReplyObject(st);
  if (!ex) {
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_cmd_push_str(&c, "LRANGE");
    erpq_cmd_pushf(&c, "%s%s:logs", ss.k.base, id);
    erpq_cmd_push_str(&c, "0");
    erpq_cmd_push_str(&c, "-1");
    redisReply *r = NULL;
    ex = cli_run(&ss, &c, &r);
    erpq_cmd_free(&c);
    if (!ex && r->type != REDIS_REPLY_ARRAY) ex = cli_unexpected("LRANGE");
    if (!ex) {
      json_t *arr = as_json ? json_array() : NULL;
      for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        if (arr) json_array_append_new(arr, json_stringn(e->str, e->len));
        else printf("%.*s\n", (int)e->len, e->str);
      }
      if (arr) cli_print_json(arr);
      json_decref(arr);
      fflush(stdout);
    }
    if (r) freeReplyObject(r);
  }
  cli_session_close(&ss);
  return ex;
}
