/*
 * erpq-producer - add and manage bull 4.16.5 jobs from the command line.
 *
 * main.c parses the global options and the subcommand's arguments, checks
 * every value (exit 2 on anything malformed, before Redis is contacted) and
 * calls the command in erpq_cli.c.
 */
#include <math.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_args.h"
#include "erpq_cli.h"
#include "erpq_cli_check.h"
#include "erpq_cli_download.h"
#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_http.h" /* serve: the HTTP API */
#include "erpq_http_auth.h"
#include "erpq_token.h"
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
    "  add QUEUE NAME [--data JSON|@FILE] [--opts JSON|@FILE] [--wait [--timeout S]] [--no-validate]\n"
    "      Adds a job as Queue.add(NAME, data, opts) and prints its id. opts: jobId, delay,\n"
    "      priority, lifo, attempts, backoff, timeout, removeOnComplete, removeOnFail,\n"
    "      repeat {cron,tz,every,limit,startDate,endDate}, debounce {id,ttl}. A repeatable\n"
    "      job prints the id of its first occurrence. --wait then blocks until the job\n"
    "      finishes and prints its returnvalue JSON (not for repeatable jobs); --timeout\n"
    "      limits the wait; on a terminal it draws the job's progress. @FILE reads the value\n"
    "      from a file (@- from stdin). Before sending, the job is checked as the HTTP API\n"
    "      checks it: the queue must be known (a built-in family's, or listed in roles.json),\n"
    "      NAME one it takes, the data must match the job's schema and opts hold only bull's\n"
    "      options; every problem is listed and nothing is sent (exit 2). --no-validate\n"
    "      skips these checks.\n"
    "  add-bulk QUEUE FILE|- [--no-validate]\n"
    "      Adds JSON lines {\"name\",\"data\",\"opts\"}, up to 1000 per script call, and prints\n"
    "      one id per line. Every line is checked first: a bad line adds nothing.\n"
    "  status QUEUE ID       the job as JSON: id, name, state, data, opts, progress,\n"
    "                        attemptsMade, returnvalue, failedReason, timestamps...\n"
    "  counts QUEUE          {waiting, active, completed, failed, delayed, paused}\n"
    "  list QUEUE --state waiting|paused|active|delayed|completed|failed [--limit N] [--json]\n"
    "                        the newest N (20) jobs in that state: id, name, attempts, when,\n"
    "                        and the reason of failed jobs; --json prints the status views\n"
    "  logs QUEUE ID [--json] the job's log lines (job.log()), oldest first\n"
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
    "  token --role ROLE [--school ID] [--sub SUBJECT] [--ttl S]\n"
    "                        prints an HS256 token for the HTTP API, signed with its secret\n"
    "                        (ERPQ_JWT_SECRET_FILE or ERPQ_JWT_SECRET); valid S seconds (3600)\n"
    "  download QUEUE ID [-o FILE]\n"
    "                        saves a completed report job's file (FILE, '-' for stdout, or the\n"
    "                        result's fileName), from S3 or ERPQ_STORAGE_DIR as the worker's\n"
    "                        ERPQ_S3_* / ERPQ_STORAGE_* settings say; checks its SHA-256\n"
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

/* ---- Options: the project's one option parser (erpq_args.h) ------------------ */

#define END {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}
static const erpq_opt global_opts[] = {
    {"redis", ERPQ_OPT_STRING, "ERPQ_REDIS_URL", "URL", "", 0, 0, ERPQ_DEFAULT_REDIS_URL,
     ERPQ_OPT_SECRET},
    {"prefix", ERPQ_OPT_STRING, "ERPQ_PREFIX", "P", "", 0, 0, ERPQ_DEFAULT_PREFIX, 0},
    {"command-timeout", ERPQ_OPT_STRING, NULL, "S", "", 0, 0, NULL, 0},
    {"help", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0},
    {"version", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0},
    END};
static const erpq_opt help_opt[] = {{"help", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0}, END};
static const erpq_opt add_opts[] = {
    {"no-validate", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0},
    {"data", ERPQ_OPT_STRING, NULL, "JSON|@FILE", "", 0, 0, NULL, 0},
    {"opts", ERPQ_OPT_STRING, NULL, "JSON|@FILE", "", 0, 0, NULL, 0},
    {"wait", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0},
    {"timeout", ERPQ_OPT_STRING, NULL, "S", "", 0, 0, NULL, 0},
    END};
static const erpq_opt bulk_opts[] = {{"no-validate", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0}, END};
static const erpq_opt list_opts[] = {
    {"state", ERPQ_OPT_STRING, NULL, "S", "", 0, 0, NULL, 0},
    {"limit", ERPQ_OPT_INT, NULL, "N", "", 1, 100000, "20", 0},
    {"json", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0},
    END};
static const erpq_opt json_opt[] = {{"json", ERPQ_OPT_FLAG, NULL, NULL, "", 0, 0, NULL, 0}, END};
static const erpq_opt state_opt[] = {{"state", ERPQ_OPT_STRING, NULL, "S", "", 0, 0, NULL, 0}, END};
static const erpq_opt clean_opts[] = {
    {"state", ERPQ_OPT_STRING, NULL, "S", "", 0, 0, NULL, 0},
    {"grace", ERPQ_OPT_INT, NULL, "MS", "", 0, INT64_C(1) << 50, NULL, 0},
    {"limit", ERPQ_OPT_INT, NULL, "N", "", 0, INT64_C(1) << 31, NULL, 0},
    END};
static const erpq_opt token_opts[] = {
    {"role", ERPQ_OPT_STRING, NULL, "ROLE", "", 0, 0, NULL, 0},
    {"school", ERPQ_OPT_STRING, NULL, "ID", "", 0, 0, NULL, 0},
    {"sub", ERPQ_OPT_STRING, NULL, "SUBJECT", "", 0, 0, NULL, 0},
    {"ttl", ERPQ_OPT_INT, NULL, "S", "", 1, 31 * 86400, "3600", 0},
    END};
static const erpq_opt repeat_opt[] = {{"repeat", ERPQ_OPT_STRING, NULL, "JSON|@FILE", "", 0, 0, NULL, 0}, END};

typedef struct cmddef {
  const char *name;
  int npos;
  const char *pos_names; /* For messages, e.g. "QUEUE NAME". */
  const erpq_opt *opts;
} cmddef;

static const cmddef commands[] = {
    {"add", 2, "QUEUE NAME", add_opts},
    {"add-bulk", 2, "QUEUE FILE", bulk_opts},
    {"list", 1, "QUEUE", list_opts},
    {"logs", 2, "QUEUE ID", json_opt},
    {"status", 2, "QUEUE ID", NULL},
    {"counts", 1, "QUEUE", NULL},
    {"pause", 1, "QUEUE", NULL},
    {"resume", 1, "QUEUE", NULL},
    {"retry", 2, "QUEUE ID", state_opt},
    {"remove", 2, "QUEUE ID", NULL},
    {"promote", 2, "QUEUE ID", NULL},
    {"clean", 1, "QUEUE", clean_opts},
    {"remove-repeatable", 2, "QUEUE NAME", repeat_opt},
    {"token", 0, "", token_opts},
    {"download", 2, "QUEUE ID", erpq_cli_download_opts},
};

typedef struct parsed {
  const cmddef *cmd;
  erpq_args *a;
  const char *pos[4];
} parsed;

static const char *opt(const parsed *p, const char *name) { return erpq_args_str(p->a, name); }

static int parse_sub(const cmddef *cmd, int argc, char **argv, parsed *p) {
  memset(p, 0, sizeof *p);
  p->cmd = cmd;
  const erpq_opt *t[] = {help_opt, cmd->opts, NULL};
  char err[512];
  if (erpq_args_parse(&p->a, t, argc, argv, 0, NULL, err, sizeof err)) {
    erpq_cli_error("%s for '%s' (see erpq-producer --help)", err, cmd->name);
    return ERPQ_EXIT_USAGE;
  }
  if (erpq_args_flag(p->a, "help")) return 0;
  int n = erpq_args_npos(p->a);
  if (n > cmd->npos) return usage_error("too many arguments for '%s' (expected %s)", cmd->name, cmd->pos_names);
  if (n < cmd->npos) return usage_error("missing arguments for '%s' (expected %s)", cmd->name, cmd->pos_names);
  for (int i = 0; i < n; i++) {
    p->pos[i] = erpq_args_pos(p->a, i);
    if (!p->pos[i][0]) return usage_error("empty argument for '%s' (expected %s)", cmd->name, cmd->pos_names);
  }
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
  int64_t grace = erpq_args_int(p->a, "grace", 0), limit = erpq_args_int(p->a, "limit", 0);
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

static int dispatch(const erpq_cli *cli, const parsed *p);

/* A command other than serve: argv[0] is its name. */
static int run(const char *url, const char *prefix, int64_t cmd_timeout_ms, int argc, char **argv) {
  const char *name = argv[0];
  const cmddef *cmd = NULL;
  for (size_t j = 0; j < sizeof commands / sizeof commands[0]; j++)
    if (!strcmp(commands[j].name, name)) cmd = &commands[j];
  if (!cmd) return usage_error("unknown command '%s'", name, NULL);
  parsed p;
  int ex = parse_sub(cmd, argc - 1, argv + 1, &p);
  if (!ex && erpq_args_flag(p.a, "help")) {
    fputs(usage_text, stdout);
  } else if (!ex) {
    erpq_cli cli;
    memset(&cli, 0, sizeof cli);
    char err[512];
    if (erpq_redis_url_parse(url, &cli.addr, err, sizeof err)) {
      erpq_cli_error("%s", err);
      ex = ERPQ_EXIT_USAGE;
    } else {
      cli.prefix = prefix;
      cli.cmd_timeout_ms = cmd_timeout_ms > 3600000 ? 3600000 : (int)cmd_timeout_ms;
      /* add and add-bulk check what the HTTP API checks, before sending. */
      erpq_cli_checker *check = NULL;
      if ((!strcmp(name, "add") || !strcmp(name, "add-bulk")) && !erpq_args_flag(p.a, "no-validate")) {
        if (erpq_cli_checker_load(&check, err, sizeof err)) {
          erpq_cli_error("cannot check the job: %s (--no-validate skips the checks)", err);
          ex = ERPQ_EXIT_USAGE;
        }
        cli.check = check;
      }
      if (!ex) ex = dispatch(&cli, &p);
      erpq_cli_checker_free(check);
    }
  }
  erpq_args_free(p.a);
  return ex;
}

/* token: an HS256 token for the HTTP API, signed with its secret. */
static int cmd_token(const parsed *p) {
  const char *role = opt(p, "role");
  if (!role) return usage_error("token needs --role (admin, backend, accountant, ...)", NULL, NULL);
  erpq_auth a;
  char err[512] = "";
  int arc = erpq_auth_init(&a, NULL, 0, err, sizeof err);
  if (!arc && !a.hs_secret) {
    erpq_auth_free(&a);
    arc = erpq_fail(err, sizeof err, ERPQ_E_ARG, "no HS256 secret is configured");
  }
  if (arc) {
    erpq_cli_error("%s (the API's secret: ERPQ_JWT_SECRET_FILE or ERPQ_JWT_SECRET; scripts/run "
                   "writes .run/jwt-secret: source .run/env)",
                   err);
    return ERPQ_EXIT_USAGE;
  }
  char *tok = NULL;
  int rc = erpq_token_make(a.hs_secret, a.hs_len, opt(p, "sub"), role, opt(p, "school"),
                           erpq_args_int(p->a, "ttl", 3600), (int64_t)time(NULL), &tok, err,
                           sizeof err);
  erpq_auth_free(&a);
  if (rc) {
    erpq_cli_error("%s", err);
    return ERPQ_EXIT_USAGE;
  }
  printf("%s\n", tok);
  free(tok);
  return ERPQ_EXIT_OK;
}

static int dispatch(const erpq_cli *cli, const parsed *p) {
  const char *n = p->cmd->name;
  if (!strcmp(n, "add")) return cmd_add(cli, p);
  if (!strcmp(n, "add-bulk")) return erpq_cli_add_bulk(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "list")) {
    if (!opt(p, "state"))
      return usage_error("list needs --state waiting|paused|active|delayed|completed|failed", NULL,
                         NULL);
    return erpq_cli_list(cli, p->pos[0], opt(p, "state"), erpq_args_int(p->a, "limit", 20),
                         erpq_args_flag(p->a, "json"));
  }
  if (!strcmp(n, "logs")) return erpq_cli_logs(cli, p->pos[0], p->pos[1], erpq_args_flag(p->a, "json"));
  if (!strcmp(n, "status")) return erpq_cli_status(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "counts")) return erpq_cli_counts(cli, p->pos[0]);
  if (!strcmp(n, "pause")) return erpq_cli_pause(cli, p->pos[0], 1);
  if (!strcmp(n, "resume")) return erpq_cli_pause(cli, p->pos[0], 0);
  if (!strcmp(n, "retry")) return cmd_retry(cli, p);
  if (!strcmp(n, "remove")) return erpq_cli_remove(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "promote")) return erpq_cli_promote(cli, p->pos[0], p->pos[1]);
  if (!strcmp(n, "clean")) return cmd_clean(cli, p);
  if (!strcmp(n, "remove-repeatable")) return cmd_remove_repeatable(cli, p);
  if (!strcmp(n, "token")) return cmd_token(p);
  if (!strcmp(n, "download")) return erpq_cli_download(cli, p->a, p->pos[0], p->pos[1]);
  return usage_error("unknown command '%s'", n, NULL);
}

int main(int argc, char **argv) {
  /* The short forms the help names: -h and -V. */
  for (int k = 1; k < argc && strcmp(argv[k], "--"); k++) {
    if (!strcmp(argv[k], "-h")) argv[k] = (char *)"--help";
    if (!strcmp(argv[k], "-V")) argv[k] = (char *)"--version";
    if (!strcmp(argv[k], "-o")) argv[k] = (char *)"--output"; /* download */
  }
  const erpq_opt *t[] = {global_opts, NULL};
  erpq_args *g = NULL;
  char err[512];
  int used = 0;
  if (erpq_args_parse(&g, t, argc - 1, argv + 1, ERPQ_ARGS_STOP, &used, err, sizeof err)) {
    erpq_cli_error("%s (see erpq-producer --help)", err);
    return ERPQ_EXIT_USAGE;
  }
  int i = 1 + used, ex = ERPQ_EXIT_OK;
  int64_t cmd_timeout_ms = 10000;
  const char *url = erpq_args_str(g, "redis"), *prefix = erpq_args_str(g, "prefix");
  const char *ct = erpq_args_str(g, "command-timeout");
  if (erpq_args_flag(g, "help")) {
    fputs(usage_text, stdout);
  } else if (erpq_args_flag(g, "version")) {
    printf("erpq-producer %s (bull 4.16.5 protocol)\n", ERPQ_VERSION);
  } else if (!*prefix) {
    ex = usage_error("--prefix must not be empty", NULL, NULL);
  } else if (ct && parse_seconds("--command-timeout", ct, &cmd_timeout_ms)) {
    ex = ERPQ_EXIT_USAGE;
  } else if (i >= argc) {
    ex = usage_error("missing command", NULL, NULL);
  } else if (!strcmp(argv[i], "serve")) {
    /* The HTTP API (erpq_http.c reads its own options). */
    ex = erpq_http_main(url, prefix, argc - i - 1, argv + i + 1);
  } else {
    ex = run(url, prefix, cmd_timeout_ms, argc - i, argv + i);
  }
  erpq_args_free(g);
  erpq_log_flush(2000); /* the log lines still buffered (atexit would too) */
  return ex;
}
