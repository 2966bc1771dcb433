/*
 * erpq_http.h - `erpq-producer serve`: the HTTP API of erpq.
 *
 * The API of schemas/openapi.yaml: enqueue (one job or a bulk, with an
 * optional Idempotency-Key), read, long-poll, delete and retry a job, queue
 * counts, pause and resume, plus /healthz, /readyz and /metrics. Callers
 * present a bearer JWT (erpq_http_auth.h) whose role the roles file grants
 * actions; job data is checked against the job schemas; requests are rate
 * limited per client address (erpq_http_client.h) and per token subject.
 *
 * It runs --threads N event loops, each a libuv loop with a libmicrohttpd
 * daemon in external epoll mode and asynchronous Redis connections
 * (core/erpq_conn): nothing blocks, a request waiting on Redis or on a job
 * holds no thread. SIGINT/SIGTERM stop it gracefully. The states,
 * invariants and ownership rules of its parts are described in
 * erpq_http_private.h, which also maps its files.
 */
#ifndef ERPQ_HTTP_H
#define ERPQ_HTTP_H

/* Runs the server until SIGINT/SIGTERM; argv holds the arguments after
 * "serve". Returns a process exit code: 0 after a clean stop, 1 when a loop
 * did not close cleanly, 2 for bad options or files, 4 when it cannot
 * listen or start, 5 when the Lua scripts do not load. */
int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv);

#endif
