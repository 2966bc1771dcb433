/*
 * erpq_cli.h - the commands of erpq-producer.
 *
 * Each command connects to Redis with the synchronous client
 * (erpq_redis_sync.h), builds its bull operation with erpq_bull.h, prints its
 * result on stdout (JSON, or plain ids for add/add-bulk) and returns the
 * process exit code; failures are reported as one line on stderr. main.c
 * parses the command line and calls these.
 */
#ifndef ERPQ_CLI_H
#define ERPQ_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_config.h"

/* Exit codes (documented in --help). */
enum {
  ERPQ_EXIT_OK = 0,
  ERPQ_EXIT_FAIL = 1,    /* The operation was refused: missing/locked job, failed job... */
  ERPQ_EXIT_USAGE = 2,   /* Bad arguments, options, numbers or JSON. */
  ERPQ_EXIT_TIMEOUT = 3, /* add --wait ran out of time. */
  ERPQ_EXIT_CONN = 4,    /* Redis unreachable, auth refused, connection lost or timed out. */
  ERPQ_EXIT_REDIS = 5,   /* Redis answered an error or something unexpected. */
};

typedef struct erpq_cli_checker erpq_cli_checker;

typedef struct erpq_cli {
  erpq_redis_addr addr;
  const char *prefix;
  int cmd_timeout_ms; /* Connect and per-command timeout. */
  const erpq_cli_checker *check; /* What add and add-bulk check first; NULL: nothing. */
} erpq_cli;

/* Prints every problem of a refused job ({"path","message"}) on stderr,
 * one line each; returns ERPQ_EXIT_USAGE. */
int erpq_cli_refuse(const json_t *problems);

/* Prints "erpq-producer: <message>" on stderr. */
void erpq_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads an argument that is either inline text or "@FILE" ("@-": stdin)
 * into a malloc'ed string. Returns NULL with a message in err. */
char *erpq_cli_read_arg(const char *arg, char *err, size_t errlen);

/* Parses JSON text (any value) with a message naming what on failure. */
json_t *erpq_cli_parse_json(const char *what, const char *text, char *err, size_t errlen);

/* add: data_json may be NULL ("{}"), opts may be NULL. With wait, blocks
 * until the job finishes (timeout_ms < 0: no limit). */
int erpq_cli_add(const erpq_cli *cli, const char *queue, const char *name, const char *data_json,
                 const json_t *opts, int wait, int64_t timeout_ms);
/* add-bulk: path is a file or "-" for stdin. */
int erpq_cli_add_bulk(const erpq_cli *cli, const char *queue, const char *path);
int erpq_cli_status(const erpq_cli *cli, const char *queue, const char *id);
int erpq_cli_counts(const erpq_cli *cli, const char *queue);
int erpq_cli_pause(const erpq_cli *cli, const char *queue, int pause);
/* state is "failed" or "completed". */
int erpq_cli_retry(const erpq_cli *cli, const char *queue, const char *id, const char *state);
int erpq_cli_remove(const erpq_cli *cli, const char *queue, const char *id);
int erpq_cli_promote(const erpq_cli *cli, const char *queue, const char *id);
/* limit 0 = all. */
int erpq_cli_clean(const erpq_cli *cli, const char *queue, const char *state, int64_t grace_ms,
                   int64_t limit);
int erpq_cli_remove_repeatable(const erpq_cli *cli, const char *queue, const char *name,
                               const json_t *repeat);

/* list: up to limit jobs of state, newest first, as a table or JSON. */
int erpq_cli_list(const erpq_cli *cli, const char *queue, const char *state, int64_t limit,
                  int as_json);
/* logs: the job's log lines, one per line (or a JSON array). */
int erpq_cli_logs(const erpq_cli *cli, const char *queue, const char *id, int as_json);

/* The largest number of jobs add-bulk sends in one script call. */
#define ERPQ_CLI_BULK_BATCH 1000

#endif
