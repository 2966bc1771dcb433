/*
 * erpq_http.h - `erpq-producer serve`: the HTTP API of erpq.
 *
 * Loops. --threads N (default 1) event loops, each a libuv loop on a thread
 * of its own holding: one libmicrohttpd daemon in "external" epoll mode on
 * the listening socket all loops share (the loop watches the daemon's epoll
 * descriptor and its timeout); one asynchronous Redis connection for
 * commands and one for PSUBSCRIBE (core/erpq_conn, hiredis on this loop);
 * and a 100 ms sweep timer. Nothing in a loop blocks: a slow client costs a
 * socket and a little memory, and every Redis call is asynchronous.
 *
 * A request. libmicrohttpd parses it and calls on_request(); the handler
 * answers at once (health, 4xx found without Redis) or starts one Redis
 * call and the connection is suspended. The reply's step either answers
 * (the connection is resumed and the answer queued when libmicrohttpd calls
 * back) or starts the next call. A request has at most one call in flight;
 * the calls of all requests in hand go out in one write per loop turn and
 * their replies come back together, so a burst of requests costs Redis one
 * read and us one write. Invariants: a suspended request is calling Redis
 * or registered as a waiter, never neither; a request is freed only by
 * libmicrohttpd's completion callback, or by its reply if the connection
 * ended during the call (only at shutdown).
 *
 * Redis failures. A call sent while the connection is down answers 503
 * (Retry-After: 1) at once. Calls are listed oldest first: when the oldest
 * is older than --redis-timeout the sweep drops the connection, which
 * answers every call in flight 503, and erpq_conn reconnects with backoff.
 *
 * Long-poll. GET .../wait registers its request in the loop's waiter list,
 * then reads the job; unfinished, it stays suspended with no call in flight
 * until a finish event of its job arrives on the subscriber, its deadline
 * or the 5 s watchdog passes (as bull's job.finished() does), or the
 * subscriber reconnects; it then reads the job again. Redis is never polled
 * in a loop.
 *
 * Request order: route (404/405), body size (413 over 1 MiB), rate limits
 * (429; counted in Redis per fixed one-minute window, per client address
 * for every request and per token subject once the token is valid, so
 * several API processes share them; an invalid token still counts against
 * its address; behind --trusted-proxies the address comes from
 * X-Forwarded-For, see erpq_http_client.h), token (401), permission (403), queue (404), JSON (400), job
 * permission and school (403), validation (422), then the operation. A
 * plain enqueue counts inside its add script; if it is answered before the
 * add, the answer waits for the count (see handle_v1()).
 *
 * Idempotency-Key: the job id becomes "idem-" + SHA-256(sub, queue, key);
 * a key whose job exists answers 200 with it, and bull's own duplicate-id
 * check makes two concurrent first uses add one job (both answer 201 with
 * the same id). Once the job is removed (removeOnComplete, DELETE) the key
 * can add again. Tenant scoping: a token with school_id only reaches jobs
 * whose data.schoolId equals it; another school's job answers 404.
 *
 * Slow clients: a connection idle for --client-timeout seconds is closed;
 * request line and headers must arrive within --header-timeout seconds (the
 * sweep shuts such sockets down), a body within --body-timeout seconds (the
 * connection is cut, logged as 408); connections are capped in total and
 * per client address (per loop).
 *
 * Stopping: SIGINT/SIGTERM reach the main thread, which wakes every loop:
 * it stops accepting, fires its waiters (they answer with the state they
 * read), waits for calls in flight (at most 2 s, then fails them), stops
 * its daemon, closes its Redis connections and handles; the main thread
 * joins the loops and checks that each closed with no live handle.
 */
#ifndef ERPQ_HTTP_H
#define ERPQ_HTTP_H

/* Runs the server until SIGINT/SIGTERM; argv holds the arguments after
 * "serve". Returns a process exit code. */
int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv);

#endif
