/*
 * erpq_http.h - `erpq-producer serve`: the HTTP API of erpq.
 *
 * Threads and blocking. libmicrohttpd runs a pool of event-loop threads
 * (--threads, default 8), each multiplexing its share of the connections
 * with epoll; a connection is read and parsed without ever waiting for the
 * client, so a slow client costs a socket and a little memory, never a
 * thread. Each pool thread owns one synchronous Redis connection (hiredis,
 * erpq_redis_sync) with a short command timeout (--redis-timeout, default
 * 1 s): a request that needs Redis makes one or two round trips on it,
 * typically well under a millisecond on a LAN. The bound on how long one
 * thread can stall is that timeout; after a connection failure the thread
 * answers 503 (Retry-After: 1) without retrying for a second, so Redis being
 * down makes no thread wait.
 *
 * Long-poll. GET .../wait suspends its connection (no thread is held) and
 * registers a waiter; one subscriber thread holds a PSUBSCRIBE on
 * "<prefix>:*:completed" and "<prefix>:*:failed" and resumes the waiter of
 * a finished job, or at its deadline; every 5 s (and after the subscriber
 * reconnects) all waiters re-check their job once, as bull's
 * job.finished() watchdog does. Redis is never polled in a loop.
 *
 * Request order: route (404/405), body size (413 over 1 MiB), rate limits
 * (429; counted in Redis with INCR/EXPIRE per fixed one-minute window, per
 * client address for every request and per token subject once the token is
 * valid, so several API processes share them; an invalid token still
 * counts against its address), token (401), permission (403), queue (404),
 * JSON (400), job permission and school (403), validation (422), then the
 * operation.
 *
 * Idempotency-Key: the job id becomes "idem-" + SHA-256(sub, queue, key);
 * a key whose job exists answers 200 with it, and bull's own duplicate-id
 * check makes two concurrent first uses add one job (both answer 201 with
 * the same id). Once the job is removed (removeOnComplete, DELETE) the key
 * can add again. Tenant scoping: a token with school_id only reaches jobs whose
 * data.schoolId equals it; another school's job answers 404.
 *
 * Slow clients: a connection idle for --client-timeout seconds is closed;
 * request line and headers must arrive within --header-timeout seconds (a
 * reaper thread shuts such sockets down), a body within --body-timeout
 * seconds (the connection is cut, logged as 408); connections are capped in
 * total and per client address.
 *
 * Tokens: each pool thread caches the last 64 tokens that passed full
 * verification, compared as whole strings; exp and nbf are re-checked on
 * every hit.
 */
#ifndef ERPQ_HTTP_H
#define ERPQ_HTTP_H

/* Runs the server until SIGINT/SIGTERM; argv holds the arguments after
 * "serve". Returns a process exit code. */
int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv);

#endif
