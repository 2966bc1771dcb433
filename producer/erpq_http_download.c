/* erpq_http_download.c - the report download routes on the event loop:
 *
 *   GET /v1/queues/{queue}/jobs/{id}/download  (token; action "read")
 *       reads the job (one Redis call, tenant-scoped as the status
 *       route), lets erpq_http_download_plan() decide, looks at the object
 *       on libuv's thread pool (an S3 HEAD can take up to the connect
 *       timeout; the loop never waits for it), then answers what
 *       erpq_http_download_answer() says: 302 to a link valid
 *       --report-link-ttl seconds, or 404/409/410/503.
 *   GET /v1/files/{key}?exp&name&sig           (no token: the link's
 *       signature is the authorisation; the client-address rate limit
 *       still applies) streams a local report file (libmicrohttpd reads
 *       the descriptor), or 403/410/404 as erpq_http_file() decides.
 *
 * The decisions live in erpq_http_files.c (pure, tested on their own);
 * this file turns them into libmicrohttpd answers. Without report storage
 * (neither ERPQ_S3_BUCKET nor ERPQ_STORAGE_DIR given to serve) both routes
 * answer 503 storage_unavailable.
 *
 * Ownership: a dl_look belongs to the thread pool from uv_queue_work() to
 * its after-callback, which frees it on the loop thread; meanwhile it is
 * on the loop's list (L->looks). It borrows the request, which stays alive
 * because r->calling is set (a connection closed during the look marks
 * r->dead, and the after-callback frees the request instead of
 * answering). A stop that cannot wait any longer answers the request 503
 * and detaches it (d->r = NULL): the after-callback then only frees the
 * look. See erpq_http_private.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_http_files.h"
#include "erpq_http_private.h"
#include "erpq_log.h"
#include "erpq_opts.h"

/* Hands a decided answer to libmicrohttpd (its descriptor, if any, is
 * taken over) and resumes the connection; a second answer is dropped. */
static void answer_decided(req *r, erpq_http_answer *a) {
  if (r->resp) {
    erpq_http_answer_clear(a);
    return;
  }
  struct MHD_Response *resp = NULL;
  int status = a->status;
  if (a->fd >= 0) {
    resp = MHD_create_response_from_fd64(a->size, a->fd);
    if (resp)
      a->fd = -1; /* libmicrohttpd closes it. */
  } else {
    char *s = a->body ? erpq_json_dump(a->body) : NULL;
    size_t n = s ? strlen(s) : 0;
    resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!resp)
      free(s);
  }
  if (!resp) {
    erpq_http_answer_clear(a);
    http_answer_error(r, 500, "internal", "out of memory", NULL, 0);
    return;
  }
  for (size_t i = 0; i < a->nheaders; i++)
    MHD_add_response_header(resp, a->headers[i].name, a->headers[i].value);
  if (!erpq_http_answer_header(a, "Cache-Control"))
    MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  erpq_http_answer_clear(a);
  r->resp = resp;
  r->resp_status = status;
  http_resume(r);
}

static void storage_unavailable(req *r) {
  http_answer_error(
      r, 503, "storage_unavailable",
      "this API has no report storage configured (ERPQ_S3_BUCKET or ERPQ_STORAGE_DIR)", NULL, 0);
}

/* ---- GET .../jobs/{id}/download --------------------------------------------------- */

typedef struct dl_look {
  uv_work_t work;
  struct dl_look *next, *prev; /* On r's loop's list while in flight. */
  hloop *L;
  req *r; /* NULL once detached by a stop. */
  const erpq_storage *st;
  erpq_http_dlplan plan;
  int head_rc;
  erpq_storage_info info;
  char err[256];
} dl_look;

static void look_work(uv_work_t *w) {
  dl_look *d = w->data;
  memset(&d->info, 0, sizeof d->info);
  d->head_rc = erpq_storage_head(d->st, d->plan.key, &d->info, d->err, sizeof d->err);
}

static void look_unlink(dl_look *d) {
  if (d->prev)
    d->prev->next = d->next;
  else
    d->L->looks = d->next;
  if (d->next)
    d->next->prev = d->prev;
  d->next = d->prev = NULL;
}

static void look_done(uv_work_t *w, int status) {
  dl_look *d = w->data;
  req *r = d->r;
  look_unlink(d);
  if (!r) { /* Answered by a stop already. */
    free(d);
    return;
  }
  r->calling = 0;
  if (r->dead) {
    http_req_free(r);
    free(d);
    return;
  }
  const server *srv = r->L->srv;
  if (status != 0 && d->head_rc == 0)
    d->head_rc = -1; /* Cancelled: cannot happen (nothing cancels it), answered 503. */
  if (d->head_rc < 0)
    erpq_log(ERPQ_LOG_WARN, "http.storage_error", "queue", r->m.queue, "jobId", r->m.id, "error",
             d->err, NULL);
  erpq_http_answer a;
  erpq_http_answer_init(&a);
  erpq_http_download_answer(srv->storage, &d->plan, d->head_rc, &d->info, srv->link_ttl_s,
                            (int64_t)time(NULL), &a);
  free(d);
  answer_decided(r, &a);
}

static void download_viewed(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  const server *srv = r->L->srv;
  json_t *view = http_parse_view(reply, r->m.id, &r->p);
  dl_look *d = calloc(1, sizeof *d);
  if (!d) {
    json_decref(view);
    http_answer_error(r, 500, "internal", "out of memory", NULL, 0);
    return;
  }
  erpq_http_answer a;
  erpq_http_answer_init(&a);
  int final = erpq_http_download_plan(view, r->p.has_school ? r->p.school : NULL, srv->storage,
                                      srv->bucket, &d->plan, &a);
  json_decref(view);
  if (final) {
    free(d);
    answer_decided(r, &a);
    return;
  }
  erpq_http_answer_clear(&a);
  d->r = r;
  d->L = r->L;
  d->st = srv->storage;
  d->work.data = d;
  if (uv_queue_work(&r->L->loop, &d->work, look_work, look_done) != 0) {
    free(d);
    http_answer_error(r, 500, "internal", "cannot start the storage look", NULL, 0);
    return;
  }
  d->next = r->L->looks;
  if (d->next)
    d->next->prev = d;
  r->L->looks = d;
  r->calling = 1; /* Keeps the request alive and suspended until look_done. */
}

void http_downloads_abandon(hloop *L) {
  for (dl_look *d = L->looks; d; d = d->next) {
    req *r = d->r;
    if (!r)
      continue;
    d->r = NULL;
    r->calling = 0;
    if (r->dead) {
      http_req_free(r);
      continue;
    }
    http_answer_error(r, 503, "storage_unavailable",
                      "the server is stopping; ask for the download again", NULL, 1);
  }
}

void http_h_download(req *r) {
  if (!r->L->srv->storage) {
    storage_unavailable(r);
    return;
  }
  http_view_call(r, r->m.id, download_viewed);
}

/* ---- GET /v1/files/{key} ---------------------------------------------------------- */

void http_h_file(req *r) {
  const server *srv = r->L->srv;
  if (!srv->storage) {
    storage_unavailable(r);
    return;
  }
  struct MHD_Connection *c = r->conn;
  erpq_http_answer a;
  erpq_http_answer_init(&a);
  erpq_http_file(
      srv->storage, r->m.key, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "exp"),
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name"),
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sig"), (int64_t)time(NULL), &a);
  answer_decided(r, &a);
}
