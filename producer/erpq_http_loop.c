/* erpq_http_loop.c - one event loop: a libmicrohttpd daemon in external
 * epoll mode on a libuv loop, its sweep, its stop, its set-up and its end.
 * See erpq_http_private.h. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "erpq_http_private.h"
#include "erpq_log.h"
#include "erpq_util.h"

/* ---- The event loop ------------------------------------------------------------------
 * libmicrohttpd runs in "external" mode on its own epoll descriptor, which
 * the loop watches; hiredis runs on the same loop. One iteration reads
 * every ready connection, starts all their Redis calls (written together),
 * and answers every reply that came back, without a thread switch. */

static void run_mhd(hloop *L);

static void mhd_timer_cb(uv_timer_t *t) { run_mhd(t->data); }

static void run_mhd(hloop *L) {
  L->need_run = 0;
  if (!L->nds || !L->ds[0].d)
    return;
  /* Each daemon's next connection timeout (0 when it has work left over):
   * the timer runs them all at the first. */
  MHD_UNSIGNED_LONG_LONG next = 0;
  int timed = 0;
  for (int i = 0; i < L->nds; i++) {
    MHD_UNSIGNED_LONG_LONG to = 0;
    MHD_run(L->ds[i].d);
    if (MHD_get_timeout(L->ds[i].d, &to) == MHD_YES && (!timed || to < next)) {
      next = to;
      timed = 1;
    }
  }
  if (timed)
    uv_timer_start(&L->mhd_timer, mhd_timer_cb, next > 60000 ? 60000 : (uint64_t)next, 0);
  else
    uv_timer_stop(&L->mhd_timer);
}

/* Stops accepting on every daemon; the listening sockets are shared with
 * the other loops, so they stay open. */
static void quiesce(hloop *L) {
  for (int i = 0; i < L->nds; i++)
    if (L->ds[i].d)
      MHD_quiesce_daemon(L->ds[i].d);
}

static void mhd_poll_cb(uv_poll_t *p, int status, int events) {
  (void)status, (void)events;
  run_mhd(p->data);
}

/* After each poll phase: answer what the replies resumed, write the log. */
static void check_cb(uv_check_t *c) {
  hloop *L = c->data;
  if (L->need_run)
    run_mhd(L);
  http_log_flush(L);
}

static void handle_closed(uv_handle_t *h) { (void)h; }

/* Ends the loop: stops the daemons (every connection is closed), closes
 * both Redis connections gracefully and every handle; uv_run() then
 * returns. */
void http_loop_finish(hloop *L) {
  L->finished = 1;
  if (!L->quiesced)
    quiesce(L);
  L->quiesced = 1;
  /* Fail what is still in flight and answer what still waits, so that no
   * connection is suspended when the daemon stops. */
  if (L->calls_head)
    erpq_conn_reset(&L->redis);
  for (req *r = L->waiters, *nx; r; r = nx) {
    nx = r->wnext;
    http_waiter_remove(r);
    http_redis_unavailable(r);
  }
  http_downloads_abandon(L);
  if (L->need_run)
    run_mhd(L);
  http_log_flush(L);
  for (int i = 0; i < L->nds; i++) {
    MHD_stop_daemon(L->ds[i].d);
    L->ds[i].d = NULL;
  }
  erpq_conn_close(&L->redis);
  erpq_conn_close(&L->sub);
  for (int i = 0; i < L->nds; i++)
    uv_close((uv_handle_t *)&L->ds[i].poll, handle_closed);
  uv_close((uv_handle_t *)&L->mhd_timer, handle_closed);
  uv_close((uv_handle_t *)&L->check, handle_closed);
  uv_close((uv_handle_t *)&L->sweep, handle_closed);
  uv_close((uv_handle_t *)&L->stop_async, handle_closed);
}

/* Every 100 ms: Redis call deadline, header deadlines, long-poll deadlines
 * and watchdog, and the progress of a stop. */
static void sweep_cb(uv_timer_t *t) {
  hloop *L = t->data;
  const server *srv = L->srv;
  if (L->finished)
    return;
  int64_t now = erpq_mono_ms();
  if (L->calls_head && now - L->calls_head->call_ms > srv->redis_timeout_ms) {
    char ms[32];
    snprintf(ms, sizeof ms, "%d", srv->redis_timeout_ms);
    erpq_log(ERPQ_LOG_WARN, "http.redis_timeout", "#timeout_ms", ms, NULL);
    erpq_conn_reset(&L->redis); /* Every call in flight answers 503. */
  }
  int64_t limit = now - (int64_t)srv->header_timeout_s * 1000;
  for (conn_track *c = L->tracks; c; c = c->next)
    if (!c->in_request && c->since_ms < limit && c->fd >= 0) {
      shutdown(c->fd, SHUT_RDWR);
      c->fd = -1;
    }
  http_fire_all(L, 1);
  if (now >= L->next_watchdog) {
    L->next_watchdog = now + WATCHDOG_MS;
    http_fire_all(L, 0);
  }
  if (L->stopping && (L->suspended == 0 || now >= L->stop_deadline))
    http_loop_finish(L);
}

/* SIGTERM: stop accepting, let waiters answer with the state they see now,
 * let calls in flight finish (at most STOP_DRAIN_MS), then end the loop. */
static void stop_cb(uv_async_t *a) {
  hloop *L = a->data;
  if (L->stopping)
    return;
  L->stopping = 1;
  L->stop_deadline = erpq_mono_ms() + STOP_DRAIN_MS;
  quiesce(L);
  L->quiesced = 1;
  http_fire_all(L, 0);
  uv_timer_start(&L->sweep, sweep_cb, 10, 10);
}

void *http_loop_main(void *arg) {
  hloop *L = arg;
  uv_run(&L->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* With several listening sockets the loop's connection cap counts the
 * connections of all its daemons (each daemon only counts its own). */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  (void)addr, (void)addrlen;
  hloop *L = cls;
  return L->conns < (int)L->max_conn ? MHD_YES : MHD_NO;
}

int http_loop_init(hloop *L, const server *srv, int index, const int *fds, int nfds,
                   const loop_limits *lim, char *err, size_t errlen) {
  L->srv = srv;
  L->index = index;
  L->max_conn = lim->max_conn;
  if (nfds < 1 || nfds > ERPQ_LISTEN_MAX)
    return snprintf(err, errlen, "no listening socket"), -1;
  if (uv_loop_init(&L->loop))
    return snprintf(err, errlen, "cannot create an event loop"), -1;
  int epfd[ERPQ_LISTEN_MAX];
  for (L->nds = 0; L->nds < nfds; L->nds++) {
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0,
        nfds > 1 ? accept_policy : NULL, L, http_on_request, L, MHD_OPTION_EXTERNAL_LOGGER,
        http_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fds[L->nds], MHD_OPTION_CONNECTION_LIMIT,
        lim->max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT, lim->per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, lim->idle_s, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed,
        L, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_NOTIFY_CONNECTION,
        http_on_connection, L, MHD_OPTION_END);
    const union MHD_DaemonInfo *di = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (d)
      L->ds[L->nds].d = d;
    if (!di) {
      if (d)
        L->nds++;
      quiesce(L); /* The listening sockets are shared: keep them open. */
      for (int i = 0; i < L->nds; i++) {
        MHD_stop_daemon(L->ds[i].d);
        L->ds[i].d = NULL;
      }
      L->nds = 0;
      uv_loop_close(&L->loop);
      return snprintf(err, errlen, "cannot start the HTTP daemon"), -1;
    }
    epfd[L->nds] = di->epoll_fd;
  }
  for (int i = 0; i < L->nds; i++) {
    uv_poll_init(&L->loop, &L->ds[i].poll, epfd[i]);
    L->ds[i].poll.data = L;
    uv_poll_start(&L->ds[i].poll, UV_READABLE, mhd_poll_cb);
  }
  uv_timer_init(&L->loop, &L->mhd_timer);
  L->mhd_timer.data = L;
  uv_check_init(&L->loop, &L->check);
  L->check.data = L;
  uv_check_start(&L->check, check_cb);
  uv_timer_init(&L->loop, &L->sweep);
  L->sweep.data = L;
  uv_timer_start(&L->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
  uv_async_init(&L->loop, &L->stop_async, stop_cb);
  L->stop_async.data = L;
  L->next_watchdog = erpq_mono_ms() + WATCHDOG_MS;
  erpq_uuid4(L->token);
  char name[32];
  snprintf(name, sizeof name, "http-%d", index);
  erpq_conn_init(&L->redis, &L->loop, &srv->addr, name);
  L->redis.send_while_connecting = 1;
  snprintf(name, sizeof name, "http-sub-%d", index);
  L->sub.data = L;
  erpq_conn_init(&L->sub, &L->loop, &srv->addr, name);
  L->sub.on_ready = http_sub_ready;
  erpq_conn_start(&L->redis);
  erpq_conn_start(&L->sub);
  run_mhd(L);
  return 0;
}

/* Frees what the loop kept once it has ended. Returns uv_loop_close()'s
 * result: 0 when no handle was left open. */
int http_loop_free(hloop *L) {
  for (int i = 0; i < L->nkeys; i++) {
    erpq_keys_free(&L->keys[i].k);
    free(L->keys[i].queue);
  }
  L->nkeys = 0;
  erpq_buf_free(&L->log);
  return uv_loop_close(&L->loop);
}
