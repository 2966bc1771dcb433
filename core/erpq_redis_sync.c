#include "erpq_redis_sync.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_bull.h"
#include "erpq_err.h"
#include "erpq_util.h"

static struct timeval tv_of(int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  return tv;
}

/* The context's I/O error as ERPQ_E_CONN, naming the server. */
static int conn_fail(erpq_sync *s, char *err, size_t errlen, const char *doing) {
  const char *why = "connection lost";
  if (s->c && s->c->err) {
    why = s->c->errstr[0] ? s->c->errstr : why;
    /* A blocking read that hits SO_RCVTIMEO reports EAGAIN. */
    if (s->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
      why = "timed out waiting for a reply";
  }
  return erpq_fail(err, errlen, ERPQ_E_CONN, "Redis at %s: %s while %s", s->where, why, doing);
}

static int auth_error(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR &&
         (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9) ||
          !strncmp(r->str, "NOPERM", 6));
}

/* Sends a simple command given as strings; returns 0 or an error. */
static int simple(erpq_sync *s, int argc, const char **argv, const char *doing, char *err,
                  size_t errlen) {
  redisReply *r = redisCommandArgv(s->c, argc, argv, NULL);
  if (!r) return conn_fail(s, err, errlen, doing);
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR)
    rc = erpq_fail(err, errlen, ERPQ_E_CONN, "Redis at %s refused %s: %.*s", s->where, doing,
                   (int)r->len, r->str);
  freeReplyObject(r);
  return rc;
}

int erpq_sync_connect(erpq_sync *s, const erpq_redis_addr *a, int timeout_ms, char *err,
                      size_t errlen) {
  memset(s, 0, sizeof *s);
  if (timeout_ms <= 0) timeout_ms = 10000;
  struct timeval tv = tv_of(timeout_ms);
  if (a->unix_path[0]) {
    snprintf(s->where, sizeof s->where, "%s", a->unix_path);
    s->c = redisConnectUnixWithTimeout(a->unix_path, tv);
  } else {
    snprintf(s->where, sizeof s->where, "%s:%d", a->host, a->port);
    s->c = redisConnectWithTimeout(a->host, a->port, tv);
  }
  if (!s->c) return erpq_fail(err, errlen, ERPQ_E_CONN, "cannot connect to Redis at %s: out of memory", s->where);
  if (s->c->err) {
    int rc = erpq_fail(err, errlen, ERPQ_E_CONN, "cannot connect to Redis at %s: %s", s->where,
                       s->c->errstr);
    erpq_sync_close(s);
    return rc;
  }
  if (redisSetTimeout(s->c, tv) != REDIS_OK) {
    int rc = conn_fail(s, err, errlen, "setting the command timeout");
    erpq_sync_close(s);
    return rc;
  }
  int rc = 0;
  if (a->password[0]) {
    const char *argv[3] = {"AUTH", a->user, a->password};
    if (a->user[0])
      rc = simple(s, 3, argv, "AUTH", err, errlen);
    else {
      argv[1] = a->password;
      rc = simple(s, 2, argv, "AUTH", err, errlen);
    }
  }
  if (!rc && a->db) {
    char db[16];
    snprintf(db, sizeof db, "%d", a->db);
    const char *argv[2] = {"SELECT", db};
    rc = simple(s, 2, argv, "SELECT", err, errlen);
  }
  if (rc) erpq_sync_close(s);
  return rc;
}

void erpq_sync_close(erpq_sync *s) {
  if (s->c) redisFree(s->c);
  s->c = NULL;
}

int erpq_sync_run(erpq_sync *s, erpq_cmd *c, redisReply **out, char *err, size_t errlen) {
  *out = NULL;
  const int script = c->is_script;
  const char *what = script ? erpq_script_name(c->script) : NULL;
  for (int attempt = 0; attempt < 2; attempt++) {
    const char **argv;
    const size_t *lens;
    int argc = erpq_cmd_argv(c, &argv, &lens);
    if (argc < 0)
      return erpq_fail(err, errlen, argc, "cannot build the command: %s", erpq_strerror(argc));
    redisReply *r = redisCommandArgv(s->c, argc, argv, lens);
    if (!r) return conn_fail(s, err, errlen, what ? what : "running a command");
    if (attempt == 0 && script && erpq_reply_noscript(r)) {
      /* Not cached on this server (yet): send the source. */
      freeReplyObject(r);
      erpq_cmd_use_eval(c);
      continue;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      int code = auth_error(r) ? ERPQ_E_CONN : ERPQ_E_REDIS;
      int rc;
      if (what)
        rc = erpq_fail(err, errlen, code, "Redis at %s answered an error to script %s: %.*s",
                       s->where, what, (int)r->len, r->str);
      else
        rc = erpq_fail(err, errlen, code, "Redis at %s answered an error to %s: %.*s", s->where,
                       argc ? argv[0] : "a command", (int)r->len, r->str);
      freeReplyObject(r);
      return rc;
    }
    *out = r;
    return 0;
  }
  return erpq_fail(err, errlen, ERPQ_E_PROTOCOL, "Redis kept answering NOSCRIPT");
}

int erpq_sync_pipeline(erpq_sync *s, erpq_cmd *cmds, size_t n, redisReply **out, char *err,
                       size_t errlen) {
  memset(out, 0, n * sizeof *out);
  for (size_t i = 0; i < n; i++) {
    const char **argv;
    const size_t *lens;
    int argc = erpq_cmd_argv(&cmds[i], &argv, &lens);
    if (argc < 0) return erpq_fail(err, errlen, argc, "cannot build a command: %s", erpq_strerror(argc));
    if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
      return conn_fail(s, err, errlen, "queueing a command");
  }
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    void *r = NULL;
    if (redisGetReply(s->c, &r) != REDIS_OK || !r) {
      rc = conn_fail(s, err, errlen, "reading pipelined replies");
      break;
    }
    out[i] = r;
    if (out[i]->type == REDIS_REPLY_ERROR && !rc) {
      rc = erpq_fail(err, errlen, auth_error(out[i]) ? ERPQ_E_CONN : ERPQ_E_REDIS,
                     "Redis at %s answered an error: %.*s", s->where, (int)out[i]->len,
                     out[i]->str);
      /* Keep reading so that the connection stays in step. */
    }
  }
  if (rc) {
    for (size_t i = 0; i < n; i++) {
      if (out[i]) freeReplyObject(out[i]);
      out[i] = NULL;
    }
  }
  return rc;
}

int erpq_sync_subscribe(erpq_sync *s, const char *const *channels, size_t n, char *err,
                        size_t errlen) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_push_str(&c, "SUBSCRIBE");
  for (size_t i = 0; i < n; i++) erpq_cmd_push_str(&c, channels[i]);
  const char **argv;
  const size_t *lens;
  int argc = erpq_cmd_argv(&c, &argv, &lens);
  if (argc < 0) {
    erpq_cmd_free(&c);
    return erpq_fail(err, errlen, argc, "cannot build SUBSCRIBE: %s", erpq_strerror(argc));
  }
  int rc = 0;
  if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
    rc = conn_fail(s, err, errlen, "subscribing");
  erpq_cmd_free(&c);
  /* One confirmation per channel: ["subscribe", channel, count]. */
  for (size_t i = 0; !rc && i < n; i++) {
    void *v = NULL;
    if (redisGetReply(s->c, &v) != REDIS_OK || !v) {
      rc = conn_fail(s, err, errlen, "subscribing");
      break;
    }
    redisReply *r = v;
    if (r->type == REDIS_REPLY_ERROR)
      rc = erpq_fail(err, errlen, auth_error(r) ? ERPQ_E_CONN : ERPQ_E_REDIS,
                     "Redis at %s refused SUBSCRIBE: %.*s", s->where, (int)r->len, r->str);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
             r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "subscribe"))
      rc = erpq_fail(err, errlen, ERPQ_E_PROTOCOL, "Redis at %s: unexpected reply to SUBSCRIBE",
                     s->where);
    freeReplyObject(r);
  }
  return rc;
}

/* Returns 1 and the message if r is ["message", channel, payload]. */
static int take_message(redisReply *r, char **channel, char **payload) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
      r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
      r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING)
    return 0;
  *channel = strndup(r->element[1]->str, r->element[1]->len);
  *payload = strndup(r->element[2]->str, r->element[2]->len);
  if (!*channel || !*payload) {
    free(*channel);
    free(*payload);
    *channel = *payload = NULL;
    return -ENOMEM;
  }
  return 1;
}

int erpq_sync_next_message(erpq_sync *s, int timeout_ms, char **channel, char **payload,
                           char *err, size_t errlen) {
  *channel = *payload = NULL;
  int64_t deadline = timeout_ms < 0 ? -1 : erpq_mono_ms() + timeout_ms;
  for (;;) {
    /* Replies already read into hiredis's buffer come first. */
    for (;;) {
      void *v = NULL;
      if (redisGetReplyFromReader(s->c, &v) != REDIS_OK)
        return erpq_fail(err, errlen, ERPQ_E_CONN, "Redis at %s: protocol error on the subscriber connection",
                         s->where);
      if (!v) break;
      int got = take_message(v, channel, payload);
      freeReplyObject(v);
      if (got < 0) return erpq_fail(err, errlen, got, "out of memory");
      if (got) return 1;
    }
    int wait = -1;
    if (deadline >= 0) {
      int64_t left = deadline - erpq_mono_ms();
      if (left <= 0) return 0;
      wait = (int)left;
    }
    struct pollfd p = {.fd = s->c->fd, .events = POLLIN};
    int n = poll(&p, 1, wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      return erpq_fail(err, errlen, ERPQ_E_CONN, "Redis at %s: poll failed: %s", s->where,
                       strerror(errno));
    }
    if (n == 0) continue; /* The deadline check above returns. */
    if (redisBufferRead(s->c) != REDIS_OK) return conn_fail(s, err, errlen, "waiting for events");
  }
}
