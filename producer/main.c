/*
 * erpq-producer - add and manage bull 4.16.5 jobs from the command line.
 *
 * main.c parses the global options and the subcommand's arguments, checks
 * every value (exit 2 on anything malformed, before Redis is contacted) and
 * calls the command in erpq_cli.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_cli.h"
#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_http.h" /* serve: the HTTP API */
#include "erpq_log.h"

#ifndef ERPQ_VERSION
#define ERPQ_VERSION "0"
#endif

static const char usage_text[] =
    "Usage: erpq-producer [--redis URL] [--prefix P] [--command-timeout S] COMMAND [ARGS]\n"
    "\n"
    "Adds and manages jobs of bull 4.16.5 queues in Redis.\n"
    "\n"
    "Global options (before COMMAND):\n"
    "  --redis URL            redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]\n"
    "                         (env ERPQ_REDIS_URL; default " ERPQ_DEFAULT_REDIS_URL ")\n"
    "  --prefix P             key prefix (env ERPQ_PREFIX; default " ERPQ_DEFAULT_PREFIX ");\n"
    "                         a hash tag such as {erp} keeps a queue in one cluster slot\n"
    "  --command-timeout S    connect and per-command timeout in seconds (default 10)\n"
    "  -h, --help             show this help;  -V, --version  show the version\n"
    "\n"
    "Commands:\n"
    "  add QUEUE NAME [--data JSON|@FILE] [--opts JSON|@FILE] [--wait [--timeout S]]\n"
    "      Adds a job as Queue.add(NAME, data, opts) and prints its id. opts: jobId, delay,\n"
    "      priority, lifo, attempts, backoff, timeout, removeOnComplete, removeOnFail,\n"
    "      repeat {cron,tz,every,limit,startDate,endDate}, debounce {id,ttl}. A repeatable\n"
    "      job prints the id of its first occurrence. --wait then blocks until the job\n"
    "      finishes and prints its returnvalue JSON (not for repeatable jobs); --timeout\n"
    "      limits the wait. @FILE reads the value from a file (@- from stdin).\n"
    "  add-bulk QUEUE FILE|-\n"
    "      Adds JSON lines {\"name\",\"data\",\"opts\"}, up to 1000 per script call, and prints\n"
    "      one id per line. Every line is checked first: a bad line adds nothing.\n"
    "  status QUEUE ID       the job as JSON: id, name, state, data, opts, progress,\n"
    "                        attemptsMade, returnvalue, failedReason, timestamps...\n"
    "  counts QUEUE          {waiting, active, completed, failed, delayed, paused}\n"
    "  pause QUEUE           pauses the queue globally (as queue.pause())\n"
    "  resume QUEUE          resumes it\n"
    "  retry QUEUE ID [--state failed|completed]\n"
    "                        puts a failed (or completed) job back in the queue (job.retry())\n"
    "  remove QUEUE ID       removes a job that no worker holds\n"
    "  promote QUEUE ID      moves a delayed job to the queue now\n"
    "  clean QUEUE --state completed|failed|wait|active|delayed|paused [--grace MS] [--limit N]\n"
    "                        removes jobs older than MS (default 0), at most N (default 0 = all);\n"
    "                        prints the removed ids as a JSON array\n"
    "  serve [--listen HOST:PORT] ...\n"
    "                        runs the HTTP API (see erpq-producer serve --help)\n"
    "  remove-repeatable QUEUE NAME --repeat JSON|@FILE\n"
    "                        stops a repeatable job (as queue.removeRepeatable(NAME, repeat))\n"
    "\n"
    "Output: JSON on stdout (plain ids for add and add-bulk; add --wait prints the id and\n"
    "then the returnvalue); errors as one line on stderr.\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  the operation was refused or the job failed: job not found, locked, not in the\n"
    "     expected state, removed while waited for; add --wait: the job failed\n"
    "  2  bad usage: unknown command or option, missing argument, bad number, bad JSON\n"
    "  3  add --wait: the --timeout ran out before the job finished\n"
    "  4  Redis unreachable, authentication refused, connection lost or command timed out\n"
    "  5  Redis answered an error or an unexpected reply\n";

static int usage_error(const char *fmt, const char *a, const char *b) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
  erpq_cli_error("%s (see erpq-producer --help)", msg);
  return ERPQ_EXIT_USAGE;
}

/* ---- Subcommand argument parsing ------------------------------------------ */

typedef struct optdef {
  const char *name; /* Without the leading "--". */
  int has_value;
} optdef;

typedef struct cmddef {
  const char *name;
  int npos;
  const char *pos_names; /* For messages, e.g. "QUEUE NAME". */
  optdef opts[5];
} cmddef;

static const cmddef commands[] = {
    {"add", 2, "QUEUE NAME", {{"data", 1}, {"opts", 1}, {"wait", 0}, {"timeout", 1}, {0, 0}}},
    {"add-bulk", 2, "QUEUE FILE", {{0, 0}}},
    {"status", 2, "QUEUE ID", {{0, 0}}},
    {"counts", 1, "QUEUE", {{0, 0}}},
    {"pause", 1, "QUEUE", {{0, 0}}},
    {"resume", 1, "QUEUE", {{0, 0}}},
    {"retry", 2, "QUEUE ID", {{"state", 1}, {0, 0}}},
    {"remove", 2, "QUEUE ID", {{0, 0}}},
    {"promote", 2, "QUEUE ID", {{0, 0}}},
    {"clean", 1, "QUEUE", {{"state", 1}, {"grace", 1}, {"limit", 1}, {0, 0}}},
    {"remove-repeatable", 2, "QUEUE NAME", {{"repeat", 1}, {0, 0}}},
};

#define MAX_POS 4

typedef struct parsed {
  const cmddef *cmd;
  const char *pos[MAX_POS];
  int npos;
  const char *val[5]; /* Option values by index in cmd->opts; "" for a flag. */
} parsed;

static const char *opt(const parsed *p, const char *name) {
  for (int i = 0; p->cmd->opts[i].name; i++)
    if (strcmp(p->cmd->opts[i].name, name) == 0) return p->val[i];
  return NULL;
}

static int parse_sub(const cmddef *cmd, int argc, char **argv, parsed *p) {
  memset(p, 0, sizeof *p);
  p->cmd = cmd;
  int only_pos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    if (!only_pos && a[0] == '-' && a[1] == '-') {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t nl = eq ? (size_t)(eq - name) : strlen(name);
      int k = -1;
      for (int j = 0; cmd->opts[j].name; j++)
        if (strlen(cmd->opts[j].name) == nl && strncmp(cmd->opts[j].name, name, nl) == 0) k = j;
      if (k < 0) {
        char o[128];
        snprintf(o, sizeof o, "%.*s", (int)(nl < 100 ? nl : 100), a);
        return usage_error("unknown option '%s' for '%s'", o, cmd->name);
      }
      if (p->val[k]) return usage_error("option '--%s' given twice", cmd->opts[k].name, NULL);
      if (!cmd->opts[k].has_value) {
        if (eq) return usage_error("option '--%s' takes no value", cmd->opts[k].name, NULL);
        p->val[k] = "";
      } else if (eq) {
        p->val[k] = eq + 1;
      } else {
        if (i + 1 >= argc) return usage_error("option '--%s' needs a value", cmd->opts[k].name, NULL);
        p->val[k] = argv[++i];
      }
      continue;
    }
    if (!only_pos && a[0] == '-' && a[1] && a[1] != '-')
      return usage_error("unknown option '%s' for '%s'", a, cmd->name);
    if (p->npos >= cmd->npos)
      return usage_error("too many arguments for '%s' (expected %s)", cmd->name, cmd->pos_names);
    p->pos[p->npos++] = a;
  }
  if (p->npos < cmd->npos)
    return usage_error("missing arguments for '%s' (expected %s)", cmd->name, cmd->pos_names);
  for (int i = 0; i < p->npos; i++)
    if (!p->pos[i][0]) return usage_error("empty argument for '%s' (expected %s)", cmd->name, cmd->pos_names);
  return 0;
}

/* Parses seconds (decimals allowed) into milliseconds. */
static int parse_seconds(const char *what, const char *s, int64_t *ms) {
  char *end;
  double d = strtod(s, &end);
  if (end == s || *end || !isfinite(d) || d <= 0 || d > 1e9)
    return usage_error("%s must be a positive number of seconds, got '%s'", what, s);
  *ms = (int64_t)ceil(d * 1000.0);
  return 0;
}

static int parse_int(const char *what, const char *s, int64_t max, int64_t *out) {
  char err[256];
  if (erpq_parse_int_arg(what, s, 0, max, out, err, sizeof err)) {
    erpq_cli_error("%s (see erpq-producer --help)", err);
    return ERPQ_EXIT_USAGE;
  }
  return 0;
}

/* Reads an inline or @FILE JSON argument. */
static int json_arg(const char *what, const char *arg, char **text, json_t **val) {
  char err[512];
  *text = erpq_cli_read_arg(arg, err, sizeof err);
  if (!*text) {
    erpq_cli_error("%s: %s", what, err);
    return ERPQ_EXIT_USAGE;
  }
  *val = erpq_cli_parse_json(what, *text, err, sizeof err);
  if (!*val) {
    erpq_cli_error("%s", err);
    free(*text);
    *text = NULL;
    return ERPQ_EXIT_USAGE;
  }
  return 0;
}

/* ---- Commands --------------------------------------------------------------- */

static int cmd_add(const erpq_cli *cli, const parsed *p) {
  const char *data_arg = opt(p, "data"), *opts_arg = opt(p, "opts");
  const char *timeout_arg = opt(p, "timeout");
  int wait = opt(p, "wait") != NULL;
  int64_t timeout_ms = -1;
  if (timeout_arg && !wait) return usage_error("--timeout needs --wait", NULL, NULL);
  if (timeout_arg && parse_seconds("--timeout", timeout_arg, &timeout_ms)) return ERPQ_EXIT_USAGE;
  char *data_txt = NULL, *opts_txt = NULL;
  json_t *data = NULL, *opts = NULL;
  int ex = 0;
  if (data_arg) ex = json_arg("--data", data_arg, &data_txt, &data);
  if (!ex && opts_arg) {
    ex = json_arg("--opts", opts_arg, &opts_txt, &opts);
    if (!ex && !json_is_object(opts)) {
      erpq_cli_error("--opts must be a JSON object");
      ex = ERPQ_EXIT_USAGE;
    }
  }
  if (!ex) ex = erpq_cli_add(cli, p->pos[0], p->pos[1], data_txt, opts, wait, timeout_ms);
  json_decref(data);
  json_decref(opts);
  free(data_txt);
  free(opts_txt);
  return ex;
}

static int cmd_retry(const erpq_cli *cli, const parsed *p) {
  const char *state = opt(p, "state");
  if (!state) state = "failed";
  if (strcmp(state, "failed") && strcmp(state, "completed"))
    return usage_error("--state for retry must be failed or completed, got '%s'", state, NULL);
  return erpq_cli_retry(cli, p->pos[0], p->pos[1], state);
}

static int cmd_clean(const erpq_cli *cli, const parsed *p) {
  static const char *const states[] = {"completed", "failed", "wait", "active", "delayed", "paused"};
  const char *state = opt(p, "state");
  if (!state) return usage_error("clean needs --state completed|failed|wait|active|delayed|paused", NULL, NULL);
  int ok = 0;
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) ok |= strcmp(states[i], state) == 0;
  if (!ok)
    return usage_error("--state must be completed, failed, wait, active, delayed or paused, got '%s'", state, NULL);
  int64_t grace = 0, limit = 0;
  if (opt(p, "grace") && parse_int("--grace", opt(p, "grace"), INT64_C(1) << 50, &grace)) return ERPQ_EXIT_USAGE;
  if (opt(p, "limit") && parse_int("--limit", opt(p, "limit"), INT64_C(1) << 31, &limit)) return ERPQ_EXIT_USAGE;
  return erpq_cli_clean(cli, p->pos[0], state, grace, limit);
}

static int cmd_remove_repeatable(const erpq_cli *cli, const parsed *p) {
  const char *rep = opt(p, "repeat");
  if (!rep) return usage_error("remove-repeatable needs --repeat JSON", NULL, NULL);
  char *txt = NULL;
  json_t *v = NULL;
  int ex = json_arg("--repeat", rep, &txt, &v);
  if (!ex) ex = erpq_cli_remove_repeatable(cli, p->pos[0], p->pos[1], v);
  json_decref(v);
  free(txt);
  return ex;
}

static int dispatch(const erpq_cli *cli, const parsed *p) {
  const char *n = p->cmd->name;
  if (!strcmp(n, "add")) return cmd_add(cli, p);
  if (!strcmp(n, "add-bulk")) return erpq_cli_add_bulk(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "status")) return erpq_cli_status(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "counts")) return erpq_cli_counts(cli, p->pos[0]);
  if (!strcmp(n, "pause")) return erpq_cli_pause(cli, p->pos[0], 1);
  if (!strcmp(n, "resume")) return erpq_cli_pause(cli, p->pos[0], 0);
  if (!strcmp(n, "retry")) return cmd_retry(cli, p);
  if (!strcmp(n, "remove")) return erpq_cli_remove(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "promote")) return erpq_cli_promote(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "clean")) return cmd_clean(cli, p);
  if (!strcmp(n, "remove-repeatable")) return cmd_remove_repeatable(cli, p);
  return usage_error("unknown command '%s'", n, NULL);
}

int main(int argc, char **argv) {
  const char *url = erpq_env("ERPQ_REDIS_URL", ERPQ_DEFAULT_REDIS_URL);
  const char *prefix = erpq_env("ERPQ_PREFIX", ERPQ_DEFAULT_PREFIX);
  int64_t cmd_timeout_ms = 10000;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return ERPQ_EXIT_OK;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("erpq-producer %s (bull 4.16.5 protocol)\n", ERPQ_VERSION);
      return ERPQ_EXIT_OK;
    }
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-') break;
    const char *names[] = {"--redis", "--prefix", "--command-timeout"};
    const char *val = NULL;
    int k = -1;
    for (int j = 0; j < 3; j++) {
      size_t n = strlen(names[j]);
      if (!strncmp(a, names[j], n) && (a[n] == '\0' || a[n] == '=')) {
        k = j;
        if (a[n] == '=')
          val = a + n + 1;
        else if (i + 1 < argc)
          val = argv[++i];
        else
          return usage_error("option '%s' needs a value", names[j], NULL);
      }
    }
    if (k < 0) return usage_error("unknown option '%s'", a, NULL);
    if (k == 0) url = val;
    if (k == 1) {
      if (!*val) return usage_error("--prefix must not be empty", NULL, NULL);
      prefix = val;
    }
    if (k == 2 && parse_seconds("--command-timeout", val, &cmd_timeout_ms)) return ERPQ_EXIT_USAGE;
  }
  if (i >= argc) return usage_error("missing command", NULL, NULL);
  const char *name = argv[i];
  /* ---- serve: the HTTP API (erpq_http.c parses its own options). ---- */
  if (!strcmp(name, "serve")) {
    int src = erpq_http_main(url, prefix, argc - i - 1, argv + i + 1);
    erpq_log_flush(2000); /* the log lines still buffered (atexit would too) */
    return src;
  }
  /* ---- end serve ---- */
  const cmddef *cmd = NULL;
  for (size_t j = 0; j < sizeof commands / sizeof commands[0]; j++)
    if (!strcmp(commands[j].name, name)) cmd = &commands[j];
  if (!cmd) return usage_error("unknown command '%s'", name, NULL);
  for (int j = i + 1; j < argc; j++) {
    if (!strcmp(argv[j], "--")) break;
    if (!strcmp(argv[j], "-h") || !strcmp(argv[j], "--help")) {
      fputs(usage_text, stdout);
      return ERPQ_EXIT_OK;
    }
  }
  parsed p;
  int ex = parse_sub(cmd, argc - i - 1, argv + i + 1, &p);
  if (ex) return ex;

  erpq_cli cli;
  memset(&cli, 0, sizeof cli);
  char err[512];
  if (erpq_redis_url_parse(url, &cli.addr, err, sizeof err)) {
    erpq_cli_error("%s", err);
    return ERPQ_EXIT_USAGE;
  }
  cli.prefix = prefix;
  cli.cmd_timeout_ms = cmd_timeout_ms > 3600000 ? 3600000 : (int)cmd_timeout_ms;
  int drc = dispatch(&cli, &p);
  erpq_log_flush(2000);
  return drc;
}
