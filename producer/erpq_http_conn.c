/* erpq_http_conn.c - libmicrohttpd's callbacks: a connection's start, end
 * and header deadline, a request's arrival, body and answer, and the
 * library's own log. See erpq_http_private.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_log.h"
#include "erpq_util.h"

/* ---- Connections and their header deadline ------------------------------------------
 * libmicrohttpd closes idle connections, but a client that sends its
 * headers one byte a second is never idle. Every connection is tracked from
 * its start (and again after each answered request, for keep-alive); the
 * sweep shuts down the socket of one whose request headers are not complete
 * --header-timeout seconds later. shutdown() only makes the library's next
 * read fail: the library still closes the descriptor itself, and the entry
 * leaves the list (on this same thread) before that happens. */

static conn_track *track_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void track_request(struct MHD_Connection *c, int in_request) {
  conn_track *t = track_of(c);
  if (!t)
    return;
  t->in_request = in_request;
  t->since_ms = erpq_mono_ms();
}

void http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe) {
  hloop *L = cls;
  const server *srv = L->srv;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    L->conns++;
    conn_track *t = calloc(1, sizeof *t);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!t || !ci) {
      free(t);
      return;
    }
    t->fd = ci->connect_fd;
    t->since_ms = erpq_mono_ms();
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ai ? ai->client_addr : NULL;
    if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
      memcpy(&t->peer, sa,
             sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
      t->has_peer = 1;
      t->peer_trusted = erpq_proxies_trust(&srv->proxies, sa);
    }
    erpq_client_of(&srv->proxies, t->has_peer ? (const struct sockaddr *)&t->peer : NULL, NULL,
                   t->addr, sizeof t->addr, t->net, sizeof t->net);
    t->next = L->tracks;
    if (L->tracks)
      L->tracks->prev = t;
    L->tracks = t;
    *socket_context = t;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    L->conns--;
    if (!*socket_context)
      return;
    conn_track *t = *socket_context;
    if (t->prev)
      t->prev->next = t->next;
    else
      L->tracks = t->next;
    if (t->next)
      t->next->prev = t->prev;
    free(t);
    *socket_context = NULL;
  }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------ */

void http_req_free(req *r) {
  for (size_t i = 0; r->jobs && r->prep && i < r->njobs; i++)
    if (r->prep[i])
      erpq_newjob_free(&r->jobs[i]);
  free(r->jobs);
  free(r->prep);
  json_decref(r->name);
  json_decref(r->idem_body);
  if (r->resp)
    MHD_destroy_response(r->resp);
  if (r->held)
    MHD_destroy_response(r->held);
  if (r->has_own_k)
    erpq_keys_free(&r->own_k);
  erpq_buf_free(&r->body);
  free(r);
}

/* Queues the prepared answer, counts and logs it. */
static enum MHD_Result send_prepared(struct MHD_Connection *c, req *r, const char *url,
                                     const char *method) {
  struct MHD_Response *resp = r->resp;
  r->resp = NULL;
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->resp_status, resp);
  MHD_destroy_response(resp);
  r->answered = -r->resp_status;
  erpq_metrics_request(r->m.route, r->resp_status, (double)(http_mono_us() - r->start_us) / 1e6);
  http_access_log(r, method, url, r->resp_status);
  return ok;
}

static req *req_new(hloop *L, struct MHD_Connection *c) {
  req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  const server *srv = L->srv;
  r->L = L;
  r->conn = c;
  r->start_ms = erpq_mono_ms();
  r->start_us = http_mono_us();
  const conn_track *t = track_of(c);
  const char *xff = t && t->peer_trusted
                        ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For")
                        : NULL;
  if (xff) {
    erpq_client_of(&srv->proxies, (const struct sockaddr *)&t->peer, xff, r->addr, sizeof r->addr,
                   r->net, sizeof r->net);
  } else {
    snprintf(r->addr, sizeof r->addr, "%s", t ? t->addr : "unknown");
    snprintf(r->net, sizeof r->net, "%s", t ? t->net : "unknown");
  }
  return r;
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_size, void **con_cls) {
  (void)version;
  hloop *L = cls;
  const server *srv = L->srv;
  req *r = *con_cls;
  if (!r) {
    r = req_new(L, c);
    if (!r)
      return MHD_NO;
    *con_cls = r;
    track_request(c, 1);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    /* An oversized body up to DISCARD_MAX is read and dropped (within the
     * body deadline) so that the client is sure to read our 413; a larger
     * one is refused at once and the connection closed. */
    if (cl && strtoull(cl, NULL, 10) > MAX_BODY)
      r->too_big = 1;
    if (cl && strtoull(cl, NULL, 10) > DISCARD_MAX) {
      http_match_route(url, method, &r->m);
      http_answer_error(r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
      return send_prepared(c, r, url, method);
    }
    return MHD_YES;
  }
  if (r->resp)
    return send_prepared(c, r, url, method); /* Resumed with its answer. */
  if (r->answered) {
    *upload_size = 0; /* An early answer: drop the rest of the body. */
    return MHD_YES;
  }
  if (*upload_size) {
    if (erpq_mono_ms() - r->start_ms > (int64_t)srv->body_timeout_s * 1000) {
      /* libmicrohttpd cannot answer in the middle of an upload: the
       * connection is closed, and counted and logged as a 408. */
      r->too_slow = 1;
      *upload_size = 0;
      http_match_route(url, method, &r->m);
      erpq_metrics_request(r->m.route, 408, (double)(http_mono_us() - r->start_us) / 1e6);
      http_access_log(r, method, url, 408);
      return MHD_NO;
    }
    if (r->too_big || r->body.len + *upload_size > MAX_BODY) {
      r->too_big = 1;
      *upload_size = 0;
      return MHD_YES;
    }
    erpq_buf_add(&r->body, upload_data, *upload_size);
    *upload_size = 0;
    return r->body.oom ? MHD_NO : MHD_YES;
  }
  if (r->calling || r->waiting)
    return MHD_YES; /* Not expected: still working. */
  if (r->too_big) {
    http_match_route(url, method, &r->m);
    http_answer_error(r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
  } else {
    http_handle(r, url, method);
  }
  if (r->resp)
    return send_prepared(c, r, url, method);
  if (r->calling || r->waiting) {
    MHD_suspend_connection(c);
    r->suspended = 1;
    L->suspended++;
    return MHD_YES;
  }
  http_answer_error(r, 500, "internal", "the request was not answered", NULL, 0);
  return r->resp ? send_prepared(c, r, url, method) : MHD_NO;
}

void http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                       enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)toe;
  req *r = *con_cls;
  if (!r)
    return;
  track_request(c, 0); /* Keep-alive: the next request's headers are timed from now. */
  *con_cls = NULL;
  http_waiter_remove(r);
  if (r->suspended) { /* Only at shutdown. */
    r->suspended = 0;
    r->L->suspended--;
  }
  if (r->calling) {
    r->dead = 1; /* on_reply frees it. */
    return;
  }
  http_req_free(r);
}

void http_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  erpq_log(ERPQ_LOG_WARN, "http.server", "message", msg, NULL);
}
