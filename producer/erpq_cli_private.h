/*
 * erpq_cli_private.h - what the files of the CLI (erpq_cli*.c) share: a
 * session (one queue's keys and a synchronous Redis connection) and the
 * helpers every command uses. Nothing outside producer/erpq_cli*.c
 * includes it.
 */
#ifndef ERPQ_CLI_PRIVATE_H
#define ERPQ_CLI_PRIVATE_H

#include <hiredis.h>
#include <jansson.h>

#include "erpq_bull.h"
#include "erpq_cli.h"
#include "erpq_cmd.h"
#include "erpq_redis_sync.h"

typedef struct cli_session {
  erpq_keys k;
  erpq_sync s;
  char err[1024];
} cli_session;

/* Sets up keys and the connection; returns an exit code (0 = ready). */
int cli_session_open(cli_session *ss, const erpq_cli *cli, const char *queue);
void cli_session_close(cli_session *ss);
/* Runs c; on failure prints the error and returns its exit code. */
int cli_run(cli_session *ss, erpq_cmd *c, redisReply **r);
/* The exit code for an erpq error code. */
int cli_exit_for(int rc);
/* Prints v as one JSON line on stdout. */
void cli_print_json(const json_t *v);
/* Reports an unexpected reply; returns ERPQ_EXIT_REDIS. */
int cli_unexpected(const char *what);
/* Reads job id's state: *r (owned by the caller) is NULL when the job does
 * not exist (then "job not found" is printed and ERPQ_EXIT_FAIL returned). */
int cli_read_existing_state(cli_session *ss, const char *id, redisReply **r, const char **state);

#endif
