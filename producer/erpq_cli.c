#include "erpq_cli.h"
#include "erpq_cli_check.h"
#include "erpq_cli_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_bull.h"
#include "erpq_err.h"
#include "erpq_opts.h"
#include "erpq_redis_sync.h"
#include "erpq_scripts.h"
#include "erpq_util.h"

/* The repeat module (core/erpq_repeat*.c) provides this; until it is linked
 * the weak reference stays NULL and remove-repeatable says so. */
extern int erpq_bull_remove_repeatable(erpq_cmd *c, const erpq_keys *k, const char *name,
                                       const json_t *repeat) __attribute__((weak));

/* How long add --wait re-checks the job's state while no event arrives, as
 * bull's job.finished() watchdog does. */
#define WATCHDOG_MS 5000
/* How long a job found missing may still announce its finish (a job removed
 * on completion publishes just before its hash disappears). */
#define MISSING_GRACE_MS 500

void erpq_cli_error(const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  /* One line: fold any newline of a quoted message. */
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  fprintf(stderr, "erpq-producer: %s\n", buf);
}

int erpq_cli_refuse(const json_t *problems) {
  size_t i;
  const json_t *p;
  erpq_cli_error("job refused, nothing was sent (--no-validate skips these checks):");
  json_array_foreach(problems, i, p)
    fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(p, "path")),
            json_string_value(json_object_get(p, "message")));
  return ERPQ_EXIT_USAGE;
}

int cli_exit_for(int rc) {
  switch (rc) {
  case 0: return ERPQ_EXIT_OK;
  case ERPQ_E_CONN: return ERPQ_EXIT_CONN;
  case ERPQ_E_ARG:
  case ERPQ_E_JSON: return ERPQ_EXIT_USAGE;
  default: return ERPQ_EXIT_REDIS;
  }
}

/* ---- Input helpers -------------------------------------------------------- */

static char *read_path(const char *path, size_t *len, char *err, size_t errlen) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    erpq_fail(err, errlen, ERPQ_E_ARG, "cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  char *s = erpq_buf_read_all(f, len);
  int e = errno;
  if (f != stdin) fclose(f);
  if (!s) erpq_fail(err, errlen, ERPQ_E_ARG, "cannot read '%s': %s", path, strerror(e));
  return s;
}

char *erpq_cli_read_arg(const char *arg, char *err, size_t errlen) {
  if (arg[0] == '@') {
    if (!arg[1]) {
      erpq_fail(err, errlen, ERPQ_E_ARG, "'@' must be followed by a file name (or '-' for stdin)");
      return NULL;
    }
    return read_path(arg + 1, NULL, err, errlen);
  }
  char *s = strdup(arg);
  if (!s) erpq_fail(err, errlen, -ENOMEM, "out of memory");
  return s;
}

json_t *erpq_cli_parse_json(const char *what, const char *text, char *err, size_t errlen) {
  json_error_t je;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
  if (!v)
    erpq_fail(err, errlen, ERPQ_E_JSON, "%s is not valid JSON: %s (line %d, column %d)", what,
              je.text, je.line, je.column);
  return v;
}

void cli_print_json(const json_t *v) {
  char *s = erpq_json_dump(v);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
  }
  fflush(stdout);
}

/* ---- Connection ------------------------------------------------------------ */


/* Sets up keys and the connection; returns an exit code (0 = ready). */
int cli_session_open(cli_session *ss, const erpq_cli *cli, const char *queue) {
  memset(ss, 0, sizeof *ss);
  int rc = erpq_scripts_init();
  if (rc) {
    erpq_cli_error("cannot load the Lua scripts: %s", erpq_strerror(rc));
    return ERPQ_EXIT_REDIS;
  }
  rc = erpq_keys_init(&ss->k, cli->prefix, queue);
  if (rc) {
    erpq_cli_error("bad queue name or prefix: %s", erpq_strerror(rc));
    return rc == ERPQ_E_ARG ? ERPQ_EXIT_USAGE : ERPQ_EXIT_REDIS;
  }
  rc = erpq_sync_connect(&ss->s, &cli->addr, cli->cmd_timeout_ms, ss->err, sizeof ss->err);
  if (rc) {
    erpq_cli_error("%s", ss->err);
    erpq_keys_free(&ss->k);
    return cli_exit_for(rc);
  }
  return 0;
}

void cli_session_close(cli_session *ss) {
  erpq_sync_close(&ss->s);
  erpq_keys_free(&ss->k);
}

/* Runs c; on failure prints the error and returns its exit code. */
int cli_run(cli_session *ss, erpq_cmd *c, redisReply **r) {
  int rc = erpq_sync_run(&ss->s, c, r, ss->err, sizeof ss->err);
  if (rc) {
    erpq_cli_error("%s", ss->err);
    return cli_exit_for(rc);
  }
  return 0;
}

int cli_unexpected(const char *what) {
  erpq_cli_error("cli_unexpected reply from Redis to %s", what);
  return ERPQ_EXIT_REDIS;
}

/* Reads a job's state (state.lua). *r is NULL when the job does not exist;
 * otherwise *state points into it. */
static int cli_read_state(cli_session *ss, const char *id, redisReply **r, const char **state) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_state(&c, &ss->k, id);
  int ex = cli_run(ss, &c, r);
  erpq_cmd_free(&c);
  if (ex) return ex;
  if ((*r)->type == REDIS_REPLY_NIL) {
    freeReplyObject(*r);
    *r = NULL;
    return 0;
  }
  if ((*r)->type != REDIS_REPLY_ARRAY || (*r)->elements < 2 ||
      (*r)->element[0]->type != REDIS_REPLY_STRING) {
    freeReplyObject(*r);
    *r = NULL;
    return cli_unexpected("the state script");
  }
  *state = (*r)->element[0]->str;
  return 0;
}

static int not_found(const cli_session *ss, const char *id) {
  erpq_cli_error("job %s not found in queue %s", id, ss->k.queue);
  return ERPQ_EXIT_FAIL;
}

/* cli_read_state() for a job that must exist: a missing one is an error. */
int cli_read_existing_state(cli_session *ss, const char *id, redisReply **r, const char **state) {
  int ex = cli_read_state(ss, id, r, state);
  return !ex && !*r ? not_found(ss, id) : ex;
}

/* ---- add ------------------------------------------------------------------- */

static int prepare_error(int rc, const char *err, const char *where) {
  const char *pre = where ? where : "";
  const char *sep = where ? ": " : "";
  if (rc == -EOPNOTSUPP || rc == -ENOSYS) {
    erpq_cli_error("%s%srepeatable jobs are not supported by this build%s%s", pre, sep,
                   err[0] ? ": " : "", err);
    return ERPQ_EXIT_FAIL;
  }
  if (rc == ERPQ_E_ARG || rc == ERPQ_E_JSON || rc == -EINVAL) {
    erpq_cli_error("%s%s%s", pre, sep, err[0] ? err : erpq_strerror(rc));
    return ERPQ_EXIT_USAGE;
  }
  erpq_cli_error("%s%scannot prepare the job: %s", pre, sep, err[0] ? err : erpq_strerror(rc));
  return ERPQ_EXIT_REDIS;
}

static int has_repeat(const json_t *opts) {
  const json_t *r = opts ? json_object_get(opts, "repeat") : NULL;
  return r && !json_is_null(r);
}

/* Prints a returnvalue as JSON: text is the stored JSON (NULL = undefined,
 * printed as null, as a JSON document cannot hold undefined). */
static void print_returnvalue(const char *text) {
  json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : json_null();
  if (!v) v = json_string(text); /* Not JSON: show it as a string. */
  cli_print_json(v);
  json_decref(v);
}

/* Progress of the job being waited for, on stderr: on a terminal a bar
 * redrawn in place (a number is a percentage; an object or other value is
 * shown as compact JSON), otherwise one plain line per change. */
typedef struct progress_view {
  int tty;
  int drawn; /* A bar is on the terminal's current line. */
  char *last;
} progress_view;

static void progress_show(progress_view *pv, const json_t *progress) {
  char *text = erpq_json_dump(progress);
  if (!text) return;
  if (pv->last && !strcmp(pv->last, text)) {
    free(text);
    return;
  }
  free(pv->last);
  pv->last = text;
  if (!pv->tty) {
    fprintf(stderr, "progress: %s\n", text);
    return;
  }
  if (json_is_number(progress)) {
    double pct = json_number_value(progress);
    if (pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    int fill = (int)(pct / 100.0 * 30 + 0.5);
    char bar[31];
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r  [%s] %3.0f%%\x1b[K", bar, pct);
  } else {
    fprintf(stderr, "\r  progress: %.70s\x1b[K", text);
  }
  pv->drawn = 1;
  fflush(stderr);
}

/* Ends the bar's line before anything else is printed. */
static void progress_end(progress_view *pv) {
  if (pv->drawn) fputc('\n', stderr);
  pv->drawn = 0;
  free(pv->last);
  pv->last = NULL;
}

/* The state check can see the job finished before the subscription's
 * progress events for it have been read: they were published before the
 * finish, so they are on their way. Reads them, up to the job's own finish
 * event or DRAIN_MS, so that every progress step is shown before the result. */
#define DRAIN_MS 500
static void drain_progress(cli_session *ss, cli_session *sub, const char *id, progress_view *pv) {
  int64_t until = erpq_mono_ms() + DRAIN_MS;
  for (;;) {
    int64_t now = erpq_mono_ms();
    if (now >= until) return;
    char *channel = NULL, *payload = NULL;
    if (erpq_sync_next_message(&sub->s, (int)(until - now), &channel, &payload, sub->err,
                               sizeof sub->err) <= 0)
      return;
    int finish = 0;
    json_t *ev = json_loads(payload, 0, NULL);
    const json_t *jid = json_object_get(ev, "jobId");
    char idbuf[32];
    const char *evid = json_is_string(jid) ? json_string_value(jid) : NULL;
    if (json_is_integer(jid)) {
      snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(jid));
      evid = idbuf;
    }
    if (evid && strcmp(evid, id) == 0) {
      if (strcmp(channel, ss->k.progress) == 0)
        progress_show(pv, json_object_get(ev, "progress"));
      else
        finish = 1;
    }
    json_decref(ev);
    free(channel);
    free(payload);
    if (finish) return;
  }
}

enum { W_PENDING, W_DONE };

/* One check of the job's state. Sets *exit_code and returns W_DONE when the
 * job is finished (or missing for good). */
static int wait_check(cli_session *ss, cli_session *sub, const char *id, int *missing,
                      char *last_state, size_t ls, int *exit_code, progress_view *pv) {
  redisReply *r = NULL;
  const char *state = NULL;
  int ex = cli_read_state(ss, id, &r, &state);
  if (ex) {
    *exit_code = ex;
    return W_DONE;
  }
  if (!r) {
    if (*missing) {
      progress_end(pv);
      erpq_cli_error("job %s was removed from queue %s before it finished", id, ss->k.queue);
      *exit_code = ERPQ_EXIT_FAIL;
      return W_DONE;
    }
    *missing = 1;
    return W_PENDING;
  }
  *missing = 0;
  snprintf(last_state, ls, "%s", state);
  int done = W_PENDING;
  if (strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0)
    drain_progress(ss, sub, id, pv);
  if (strcmp(state, "completed") == 0) {
    progress_end(pv);
    print_returnvalue(erpq_reply_hash_str(r->element[1], "returnvalue"));
    *exit_code = ERPQ_EXIT_OK;
    done = W_DONE;
  } else if (strcmp(state, "failed") == 0) {
    progress_end(pv);
    const char *reason = erpq_reply_hash_str(r->element[1], "failedReason");
    erpq_cli_error("job %s failed: %s", id, reason ? reason : "(no reason given)");
    *exit_code = ERPQ_EXIT_FAIL;
    done = W_DONE;
  }
  freeReplyObject(r);
  return done;
}

/* Handles a completed/failed/progress event; returns W_DONE if it finished
 * our job. */
static int wait_event(const cli_session *ss, const char *id, const char *channel, const char *payload,
                      int *exit_code, progress_view *pv) {
  json_t *ev = json_loads(payload, 0, NULL);
  if (!json_is_object(ev)) {
    json_decref(ev);
    return W_PENDING;
  }
  const json_t *jid = json_object_get(ev, "jobId");
  char idbuf[32];
  const char *evid = NULL;
  if (json_is_string(jid)) {
    evid = json_string_value(jid);
  } else if (json_is_integer(jid)) {
    snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(jid));
    evid = idbuf;
  }
  int done = W_PENDING;
  if (evid && strcmp(evid, id) == 0 && strcmp(channel, ss->k.progress) == 0) {
    progress_show(pv, json_object_get(ev, "progress"));
  } else if (evid && strcmp(evid, id) == 0) {
    progress_end(pv);
    const json_t *val = json_object_get(ev, "val");
    if (strcmp(channel, ss->k.completed) == 0) {
      /* bull: JSON.parse(val) when val is a string, undefined otherwise. */
      print_returnvalue(json_is_string(val) ? json_string_value(val) : NULL);
      *exit_code = ERPQ_EXIT_OK;
    } else {
      erpq_cli_error("job %s failed: %s", id,
                     json_is_string(val) ? json_string_value(val) : "(no reason given)");
      *exit_code = ERPQ_EXIT_FAIL;
    }
    done = W_DONE;
  }
  json_decref(ev);
  return done;
}

/* Waits for the job as bull's job.finished(): the subscription (made before
 * the add) delivers the finish; the state is checked at once and then every
 * WATCHDOG_MS in case an event was missed. */
static int wait_finished(cli_session *ss, cli_session *sub, const char *id, int64_t timeout_ms) {
  int64_t start = erpq_mono_ms();
  int64_t deadline = timeout_ms < 0 ? -1 : start + timeout_ms;
  int64_t next_check = start;
  int missing = 0, exit_code = ERPQ_EXIT_OK;
  char last_state[32] = "unknown";
  progress_view pv = {isatty(STDERR_FILENO), 0, NULL};
  for (;;) {
    int64_t now = erpq_mono_ms();
    if (now >= next_check) {
      if (wait_check(ss, sub, id, &missing, last_state, sizeof last_state, &exit_code, &pv) == W_DONE)
        return exit_code;
      now = erpq_mono_ms();
      next_check = now + (missing ? MISSING_GRACE_MS : WATCHDOG_MS);
    }
    if (deadline >= 0 && now >= deadline) {
      progress_end(&pv);
      erpq_cli_error("timed out after %.3g s waiting for job %s (state: %s)",
                     (double)timeout_ms / 1000.0, id, missing ? "missing" : last_state);
      return ERPQ_EXIT_TIMEOUT;
    }
    int64_t until = next_check;
    if (deadline >= 0 && deadline < until) until = deadline;
    char *channel = NULL, *payload = NULL;
    int got = erpq_sync_next_message(&sub->s, (int)(until - now), &channel, &payload, sub->err,
                                     sizeof sub->err);
    if (got < 0) {
      progress_end(&pv);
      erpq_cli_error("%s", sub->err);
      return cli_exit_for(got);
    }
    if (got > 0) {
      int done = wait_event(ss, id, channel, payload, &exit_code, &pv);
      free(channel);
      free(payload);
      if (done == W_DONE) return exit_code;
    }
  }
}

int erpq_cli_add(const erpq_cli *cli, const char *queue, const char *name, const char *data_json,
                 const json_t *opts, int wait, int64_t timeout_ms) {
  if (wait && has_repeat(opts)) {
    erpq_cli_error("--wait cannot be used with a repeatable job (opts.repeat)");
    return ERPQ_EXIT_USAGE;
  }
  if (opts && !json_is_object(opts)) {
    erpq_cli_error("--opts must be a JSON object");
    return ERPQ_EXIT_USAGE;
  }
  char err[512] = "";
  if (cli->check) {
    json_t *data = data_json ? json_loads(data_json, JSON_DECODE_ANY, NULL) : NULL;
    json_t *problems = json_array();
    int bad = erpq_cli_check_job(cli->check, queue, name, data, opts, "", problems);
    int ex = bad ? erpq_cli_refuse(problems) : 0;
    json_decref(problems);
    json_decref(data);
    if (ex) return ex;
  }
  erpq_newjob j;
  int rc = erpq_newjob_prepare(&j, name, data_json, opts, erpq_now_ms(), err, sizeof err);
  if (rc == 1) {
    erpq_cli_error("repeatable job has no occurrence left (limit or endDate reached); nothing added");
    return ERPQ_EXIT_FAIL;
  }
  if (rc) return prepare_error(rc, err, NULL);

  cli_session ss, sub;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) {
    erpq_newjob_free(&j);
    return ex;
  }
  int have_sub = 0;
  if (wait) {
    /* Subscribe before the add, so that no finish can slip past. */
    ex = cli_session_open(&sub, cli, queue);
    if (!ex) {
      have_sub = 1;
      const char *chans[3] = {ss.k.completed, ss.k.failed, ss.k.progress};
      rc = erpq_sync_subscribe(&sub.s, chans, 3, sub.err, sizeof sub.err);
      if (rc) {
        erpq_cli_error("%s", sub.err);
        ex = cli_exit_for(rc);
      }
    }
  }
  char *id = NULL;
  if (!ex) {
    char token[37];
    erpq_uuid4(token);
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_bull_add(&c, &ss.k, token, &j, 1, 0);
    redisReply *r = NULL;
    ex = cli_run(&ss, &c, &r);
    erpq_cmd_free(&c);
    if (!ex) {
      if (erpq_bull_parse_ids(r, &id, 1) != 1 || !id || !*id)
        ex = cli_unexpected("the add script");
      freeReplyObject(r);
    }
  }
  erpq_newjob_free(&j);
  if (!ex) {
    printf("%s\n", id);
    fflush(stdout);
    if (wait) ex = wait_finished(&ss, &sub, id, timeout_ms);
  }
  free(id);
  if (have_sub) cli_session_close(&sub);
  cli_session_close(&ss);
  return ex;
}

/* ---- add-bulk -------------------------------------------------------------- */

static int bulk_line(const erpq_cli *cli, const char *queue, const char *line, int lineno,
                     erpq_newjob *j, char *err, size_t errlen) {
  char where[32];
  snprintf(where, sizeof where, "line %d", lineno);
  json_error_t je;
  json_t *o = json_loads(line, 0, &je);
  if (!o) {
    erpq_cli_error("%s: not valid JSON: %s (column %d)", where, je.text, je.column);
    return ERPQ_EXIT_USAGE;
  }
  int ex = 0;
  if (!json_is_object(o)) {
    erpq_cli_error("%s: expected a JSON object {\"name\",\"data\",\"opts\"}", where);
    json_decref(o);
    return ERPQ_EXIT_USAGE;
  }
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    if (strcmp(key, "name") && strcmp(key, "data") && strcmp(key, "opts")) {
      erpq_cli_error("%s: unknown field '%s' (expected name, data, opts)", where, key);
      ex = ERPQ_EXIT_USAGE;
      break;
    }
  }
  const json_t *name = json_object_get(o, "name");
  const json_t *data = json_object_get(o, "data");
  const json_t *opts = json_object_get(o, "opts");
  if (!ex && name && !json_is_string(name) && !json_is_null(name)) {
    erpq_cli_error("%s: name must be a string", where);
    ex = ERPQ_EXIT_USAGE;
  }
  if (!ex && opts && !json_is_object(opts) && !json_is_null(opts)) {
    erpq_cli_error("%s: opts must be a JSON object", where);
    ex = ERPQ_EXIT_USAGE;
  }
  if (!ex && has_repeat(opts)) {
    erpq_cli_error("%s: repeatable jobs cannot be added in bulk; use add", where);
    ex = ERPQ_EXIT_USAGE;
  }
  if (!ex && cli->check) {
    char base[48];
    snprintf(base, sizeof base, "/line %d", lineno);
    json_t *problems = json_array();
    if (erpq_cli_check_job(cli->check, queue, json_is_string(name) ? json_string_value(name) : "__default__",
                           data, json_is_object(opts) ? opts : NULL, base, problems))
      ex = erpq_cli_refuse(problems);
    json_decref(problems);
  }
  if (!ex) {
    char *data_txt = data ? erpq_json_dump(data) : NULL;
    if (data && !data_txt) {
      erpq_cli_error("out of memory");
      ex = ERPQ_EXIT_REDIS;
    } else {
      err[0] = '\0';
      int rc = erpq_newjob_prepare(j, json_is_string(name) ? json_string_value(name) : NULL,
                                   data_txt, json_is_object(opts) ? opts : NULL, erpq_now_ms(),
                                   err, errlen);
      free(data_txt);
      if (rc) ex = prepare_error(rc, err, where);
    }
  }
  json_decref(o);
  return ex;
}

int erpq_cli_add_bulk(const erpq_cli *cli, const char *queue, const char *path) {
  char err[512] = "";
  char *text = read_path(path, NULL, err, sizeof err);
  if (!text) {
    erpq_cli_error("%s", err);
    return ERPQ_EXIT_USAGE;
  }
  /* Validate and prepare every line before anything is sent. */
  erpq_newjob *jobs = NULL;
  size_t n = 0, cap = 0;
  int ex = 0, lineno = 0;
  for (char *p = text; *p && !ex;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    lineno++;
    char *s = p;
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    if (*s) {
      if (n == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        erpq_newjob *nj = realloc(jobs, ncap * sizeof *nj);
        if (!nj) {
          erpq_cli_error("out of memory");
          ex = ERPQ_EXIT_REDIS;
          break;
        }
        jobs = nj;
        cap = ncap;
      }
      ex = bulk_line(cli, queue, s, lineno, &jobs[n], err, sizeof err);
      if (!ex) n++;
    }
    if (!nl) break;
    p = nl + 1;
  }
  free(text);
  cli_session ss;
  if (!ex && n > 0) ex = cli_session_open(&ss, cli, queue);
  if (!ex && n > 0) {
    char token[37];
    erpq_uuid4(token);
    erpq_cmd c;
    erpq_cmd_init(&c);
    char **ids = calloc(ERPQ_CLI_BULK_BATCH, sizeof *ids);
    if (!ids) {
      erpq_cli_error("out of memory");
      ex = ERPQ_EXIT_REDIS;
    }
    size_t added = 0;
    for (size_t off = 0; !ex && off < n; off += ERPQ_CLI_BULK_BATCH) {
      size_t m = n - off < ERPQ_CLI_BULK_BATCH ? n - off : ERPQ_CLI_BULK_BATCH;
      erpq_cmd_reset(&c);
      erpq_bull_add(&c, &ss.k, token, jobs + off, m, 0);
      redisReply *r = NULL;
      ex = cli_run(&ss, &c, &r);
      if (ex) break;
      int got = erpq_bull_parse_ids(r, ids, m);
      freeReplyObject(r);
      if (got != (int)m) {
        for (int i = 0; i < got; i++) free(ids[i]);
        ex = cli_unexpected("the add script");
        break;
      }
      for (size_t i = 0; i < m; i++) {
        printf("%s\n", ids[i]);
        free(ids[i]);
        ids[i] = NULL;
      }
      fflush(stdout);
      added += m;
    }
    if (ex && added)
      erpq_cli_error("%zu of %zu jobs were added before the error (ids printed above)", added, n);
    free(ids);
    erpq_cmd_free(&c);
    cli_session_close(&ss);
  }
  for (size_t i = 0; i < n; i++) erpq_newjob_free(&jobs[i]);
  free(jobs);
  return ex;
}

/* ---- Inspection ------------------------------------------------------------ */

int erpq_cli_status(const erpq_cli *cli, const char *queue, const char *id) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  redisReply *r = NULL;
  const char *state = NULL;
  ex = cli_read_existing_state(&ss, id, &r, &state);
  if (!ex) {
    json_t *o = erpq_bull_parse_state(r, id);
    if (o) {
      cli_print_json(o);
      json_decref(o);
    } else {
      ex = cli_unexpected("the state script");
    }
  }
  if (r) freeReplyObject(r);
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_counts(const erpq_cli *cli, const char *queue) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  erpq_cmd cmds[6];
  redisReply *rs[6] = {0};
  for (int i = 0; i < 6; i++) erpq_cmd_init(&cmds[i]);
  int rc = erpq_bull_counts(cmds, &ss.k);
  if (rc) {
    erpq_cli_error("cannot build the count commands: %s", erpq_strerror(rc));
    ex = ERPQ_EXIT_REDIS;
  } else {
    rc = erpq_sync_pipeline(&ss.s, cmds, 6, rs, ss.err, sizeof ss.err);
    if (rc) {
      erpq_cli_error("%s", ss.err);
      ex = cli_exit_for(rc);
    }
  }
  if (!ex) {
    json_t *o = json_object();
    for (int i = 0; i < 6 && !ex; i++) {
      if (rs[i]->type != REDIS_REPLY_INTEGER)
        ex = cli_unexpected("a count command");
      else
        json_object_set_new(o, erpq_bull_count_names[i], json_integer(rs[i]->integer));
    }
    if (!ex) cli_print_json(o);
    json_decref(o);
  }
  for (int i = 0; i < 6; i++) {
    if (rs[i]) freeReplyObject(rs[i]);
    erpq_cmd_free(&cmds[i]);
  }
  cli_session_close(&ss);
  return ex;
}

/* ---- Administration -------------------------------------------------------- */

/* Prints {"id":<id>,"<key>":true}. */
static void print_done(const char *id, const char *key) {
  json_t *o = json_pack("{s:s,s:b}", "id", id, key, 1);
  cli_print_json(o);
  json_decref(o);
}

static int int_reply(const redisReply *r, long long *v) {
  if (r->type != REDIS_REPLY_INTEGER) return -1;
  *v = r->integer;
  return 0;
}

int erpq_cli_pause(const erpq_cli *cli, const char *queue, int pause) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &ss.k, pause);
  redisReply *r = NULL;
  ex = cli_run(&ss, &c, &r);
  erpq_cmd_free(&c);
  if (!ex) {
    json_t *o = json_pack("{s:s,s:b}", "queue", queue, "paused", pause);
    cli_print_json(o);
    json_decref(o);
    freeReplyObject(r);
  }
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_retry(const erpq_cli *cli, const char *queue, const char *id, const char *state) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  redisReply *r = NULL;
  const char *cur = NULL;
  ex = cli_read_existing_state(&ss, id, &r, &cur);
  int lifo = 0;
  if (!ex) {
    /* bull's reprocessJob touches the hash before it finds the job is not
     * in the set: refuse early so that a wrong call changes nothing. */
    if (strcmp(cur, state) != 0) {
      erpq_cli_error("job %s is %s, not %s: only a %s job can be retried", id, cur, state, state);
      ex = ERPQ_EXIT_FAIL;
    } else {
      const char *opts = erpq_reply_hash_str(r->element[1], "opts");
      json_t *o = opts ? json_loads(opts, 0, NULL) : NULL;
      lifo = json_is_true(json_object_get(o, "lifo"));
      json_decref(o);
    }
  }
  if (r) freeReplyObject(r);
  r = NULL;
  if (!ex) {
    char token[37];
    erpq_uuid4(token);
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_bull_reprocess(&c, &ss.k, token, id, state, lifo, erpq_now_ms());
    ex = cli_run(&ss, &c, &r);
    erpq_cmd_free(&c);
  }
  if (!ex) {
    long long code;
    if (int_reply(r, &code)) {
      ex = cli_unexpected("the reprocess script");
    } else if (code == 1) {
      print_done(id, "retried");
    } else {
      if (code == 0)
        erpq_cli_error("job %s does not exist", id);
      else if (code == -1)
        erpq_cli_error("job %s is locked by a worker and cannot be retried", id);
      else if (code == -2)
        erpq_cli_error("job %s is not in the %s set", id, state);
      else
        erpq_cli_error("retry of job %s failed with code %lld", id, code);
      ex = ERPQ_EXIT_FAIL;
    }
  }
  if (r) freeReplyObject(r);
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_remove(const erpq_cli *cli, const char *queue, const char *id) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  redisReply *r = NULL;
  const char *cur = NULL;
  ex = cli_read_existing_state(&ss, id, &r, &cur);
  if (r) freeReplyObject(r);
  r = NULL;
  if (!ex) {
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_bull_remove(&c, &ss.k, id);
    ex = cli_run(&ss, &c, &r);
    erpq_cmd_free(&c);
  }
  if (!ex) {
    long long code;
    if (int_reply(r, &code)) {
      ex = cli_unexpected("the remove script");
    } else if (code == 1) {
      print_done(id, "removed");
    } else {
      erpq_cli_error("job %s is locked by a worker and cannot be removed", id);
      ex = ERPQ_EXIT_FAIL;
    }
  }
  if (r) freeReplyObject(r);
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_promote(const erpq_cli *cli, const char *queue, const char *id) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  char token[37];
  erpq_uuid4(token);
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_promote(&c, &ss.k, token, id);
  redisReply *r = NULL;
  ex = cli_run(&ss, &c, &r);
  erpq_cmd_free(&c);
  if (!ex) {
    long long code;
    if (int_reply(r, &code)) {
      ex = cli_unexpected("the promote script");
    } else if (code == 0) {
      print_done(id, "promoted");
    } else {
      /* Say why: missing, or in which state. */
      redisReply *sr = NULL;
      const char *cur = NULL;
      ex = cli_read_state(&ss, id, &sr, &cur);
      if (!ex) {
        if (!sr)
          ex = not_found(&ss, id);
        else {
          erpq_cli_error("job %s is not delayed (state: %s)", id, cur);
          ex = ERPQ_EXIT_FAIL;
        }
      }
      if (sr) freeReplyObject(sr);
    }
    freeReplyObject(r);
  }
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_clean(const erpq_cli *cli, const char *queue, const char *state, int64_t grace_ms,
                   int64_t limit) {
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  erpq_cmd c;
  erpq_cmd_init(&c);
  int rc = erpq_bull_clean(&c, &ss.k, state, grace_ms, limit, erpq_now_ms());
  redisReply *r = NULL;
  if (rc) {
    erpq_cli_error("cannot clean state '%s': %s", state, erpq_strerror(rc));
    ex = rc == ERPQ_E_ARG ? ERPQ_EXIT_USAGE : ERPQ_EXIT_REDIS;
  } else {
    ex = cli_run(&ss, &c, &r);
  }
  erpq_cmd_free(&c);
  if (!ex) {
    if (r->type != REDIS_REPLY_ARRAY) {
      ex = cli_unexpected("the clean script");
    } else {
      json_t *a = json_array();
      for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING) json_array_append_new(a, json_stringn(e->str, e->len));
      }
      cli_print_json(a);
      json_decref(a);
    }
  }
  if (r) freeReplyObject(r);
  cli_session_close(&ss);
  return ex;
}

int erpq_cli_remove_repeatable(const erpq_cli *cli, const char *queue, const char *name,
                               const json_t *repeat) {
  if (!json_is_object(repeat)) {
    erpq_cli_error("--repeat must be a JSON object such as {\"every\":1000} or {\"cron\":\"* * * * *\"}");
    return ERPQ_EXIT_USAGE;
  }
  if (!erpq_bull_remove_repeatable) {
    erpq_cli_error("remove-repeatable is not available in this build (the repeat module is not linked)");
    return ERPQ_EXIT_FAIL;
  }
  cli_session ss;
  int ex = cli_session_open(&ss, cli, queue);
  if (ex) return ex;
  erpq_cmd c;
  erpq_cmd_init(&c);
  int rc = erpq_bull_remove_repeatable(&c, &ss.k, name, repeat);
  redisReply *r = NULL;
  if (rc) {
    erpq_cli_error("bad repeat options: %s", erpq_strerror(rc));
    ex = rc == ERPQ_E_ARG || rc == ERPQ_E_JSON || rc == -EINVAL ? ERPQ_EXIT_USAGE : ERPQ_EXIT_REDIS;
  } else {
    ex = cli_run(&ss, &c, &r);
  }
  erpq_cmd_free(&c);
  if (!ex) {
    json_t *o = json_pack("{s:s,s:s,s:b}", "queue", queue, "name", name, "removed", 1);
    cli_print_json(o);
    json_decref(o);
  }
  if (r) freeReplyObject(r);
  cli_session_close(&ss);
  return ex;
}
