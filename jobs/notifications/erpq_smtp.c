/* erpq_smtp.c - see erpq_smtp.h. */
#include "erpq_smtp.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_redact.h"

typedef struct lane {
  erpq_smtp *s;
  CURLSH *share;
  int busy;
  int socks;    /* Sockets of this lane open now (0 or 1 in practice). */
  int fd;       /* The latest of them, -1 when none. */
  long on_conn; /* Messages carried by the current session. */
} lane;

struct erpq_smtp {
  erpq_curl_async *runner;
  erpq_curl_group *group;
  char *url, *user, *password, *ca_file;
  long use_ssl;
  long connect_timeout_ms, timeout_ms, reply_timeout_s, per_conn;
  int nlanes;
  lane *lanes;
  atomic_long pending;
  atomic_ulong sent, accepted, temporary, permanent, opened;
  atomic_int open_now, open_max;
};

typedef struct smsg {
  erpq_smtp *s;
  lane *lane;
  struct curl_slist *rcpt;
  char *from, *data;
  size_t len, off;
  char reply[512]; /* The last final reply line (221 to QUIT excluded). */
  char errbuf[CURL_ERROR_SIZE];
  erpq_smtp_done_fn done;
  void *ud;
} smsg;

const char *erpq_smtp_outcome_name(erpq_smtp_outcome o) {
  switch (o) {
  case ERPQ_SMTP_ACCEPTED: return "ACCEPTED";
  case ERPQ_SMTP_TEMPORARY: return "TEMPORARY";
  case ERPQ_SMTP_PERMANENT: return "PERMANENT";
  }
  return "?";
}

/* ---- Classification ---------------------------------------------------------- */

static int starts(const char *s, const char *p) { return s && strncmp(s, p, strlen(p)) == 0; }

/* The step that failed, from libcurl's result and its error text (the
 * texts are libcurl's own, lib/smtp.c). */
static const char *stage_of(int cc, int code, const char *cerr) {
  if (cc == CURLE_OK)
    return "MESSAGE";
  if (cc == CURLE_ABORTED_BY_CALLBACK)
    return "CANCELLED";
  if (starts(cerr, "MAIL failed"))
    return "MAIL";
  if (starts(cerr, "RCPT failed"))
    return "RCPT";
  if (starts(cerr, "DATA failed"))
    return "DATA";
  if (starts(cerr, "Got unexpected smtp-server response"))
    return "GREETING";
  if (starts(cerr, "Remote access denied"))
    return "EHLO";
  if (cc == CURLE_USE_SSL_FAILED || starts(cerr, "STARTTLS"))
    return "STARTTLS";
  if (cc == CURLE_LOGIN_DENIED)
    return "AUTH";
  /* The reply to the end of the data is the only failing reply that
   * libcurl reports without a text of its own. */
  if (cc == CURLE_WEIRD_SERVER_REPLY && code >= 400 && (!cerr || !*cerr))
    return "MESSAGE";
  return "CONNECTION";
}

static const char *what_of(const char *stage, int ok) {
  if (ok)
    return "accepted";
  if (!strcmp(stage, "MAIL"))
    return "sender rejected";
  if (!strcmp(stage, "RCPT"))
    return "recipient rejected";
  if (!strcmp(stage, "DATA"))
    return "DATA refused";
  if (!strcmp(stage, "MESSAGE"))
    return "message rejected";
  if (!strcmp(stage, "GREETING"))
    return "session refused by the server";
  if (!strcmp(stage, "EHLO"))
    return "EHLO refused";
  if (!strcmp(stage, "STARTTLS"))
    return "STARTTLS failed";
  if (!strcmp(stage, "AUTH"))
    return "authentication failed";
  if (!strcmp(stage, "CANCELLED"))
    return "send cancelled";
  return "connection failed";
}

void erpq_smtp_classify(int cc, int code, const char *line, const char *cerr, erpq_smtp_result *r) {
  r->curl_code = cc;
  r->reply_code = code;
  r->enhanced[0] = 0;
  r->stage = stage_of(cc, code, cerr);
  int ok = cc == CURLE_OK;
  if (ok)
    r->outcome = ERPQ_SMTP_ACCEPTED;
  else if (code >= 400 && code < 500)
    r->outcome = ERPQ_SMTP_TEMPORARY;
  else if (code >= 500 && code < 600)
    r->outcome = ERPQ_SMTP_PERMANENT;
  else if (cc == CURLE_LOGIN_DENIED)
    r->outcome = ERPQ_SMTP_PERMANENT; /* No mechanism both sides know. */
  else
    r->outcome = ERPQ_SMTP_TEMPORARY; /* I/O, timeout, TLS, cancelled. */
  const char *st = r->stage;
  r->server_wide = !ok && (code == 421 || !strcmp(st, "CONNECTION") || !strcmp(st, "GREETING") ||
                           !strcmp(st, "EHLO") || !strcmp(st, "STARTTLS") || !strcmp(st, "AUTH"));
  /* The server's own words when its last reply is the one that counts,
   * else libcurl's. */
  char text[512] = "";
  if (line && code > 0 && atoi(line) == code && (ok || code >= 400)) {
    const char *t = line + 3;
    while (*t == ' ' || *t == '-')
      t++;
    int a, b, c, n = 0;
    if (sscanf(t, "%1d.%3d.%3d%n", &a, &b, &c, &n) == 3 && (a == 2 || a == 4 || a == 5) &&
        (t[n] == ' ' || !t[n])) {
      snprintf(r->enhanced, sizeof r->enhanced, "%d.%d.%d", a, b, c);
      t += n;
      while (*t == ' ')
        t++;
    }
    erpq_redact(t, strlen(t), text, sizeof text);
  } else if (cerr && *cerr) {
    erpq_redact(cerr, strlen(cerr), text, sizeof text);
  }
  char codes[40] = "";
  if (code > 0 && r->enhanced[0])
    snprintf(codes, sizeof codes, " (%d %s)", code, r->enhanced);
  else if (code > 0 && (ok || code >= 400))
    snprintf(codes, sizeof codes, " (%d)", code);
  /* A long server text is cut here on purpose. */
  if (snprintf(r->message, sizeof r->message, "%s%s%s%s", what_of(st, ok), codes, *text ? ": " : "",
               text) < 0)
    r->message[0] = 0;
}

/* ---- Lanes ----------------------------------------------------------------------- */

static curl_socket_t lane_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
  lane *l = clientp;
  (void)purpose;
  int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (fd < 0)
    return CURL_SOCKET_BAD;
  if (l->socks++ == 0)
    l->on_conn = 0;
  l->fd = fd;
  atomic_fetch_add(&l->s->opened, 1);
  int now = atomic_fetch_add(&l->s->open_now, 1) + 1;
  if (now > atomic_load(&l->s->open_max))
    atomic_store(&l->s->open_max, now); /* Only the runner thread writes it. */
  return fd;
}

static int lane_close(void *clientp, curl_socket_t fd) {
  lane *l = clientp;
  l->socks--;
  if (fd == l->fd)
    l->fd = -1;
  atomic_fetch_sub(&l->s->open_now, 1);
  return close(fd);
}

static int configure(erpq_smtp *s, smsg *m, CURL *e);

/* Start hook (runner thread): makes the message's easy handle and binds
 * it to a free lane. */
static CURLcode smtp_start(CURL **out, void *ud, void *gud) {
  erpq_smtp *s = gud;
  smsg *m = ud;
  CURL *easy = *out = curl_easy_init();
  if (!easy || configure(s, m, easy))
    return CURLE_OUT_OF_MEMORY;
  lane *l = NULL;
  for (int i = 0; i < s->nlanes && !l; i++)
    if (!s->lanes[i].busy)
      l = &s->lanes[i];
  if (!l)
    return CURLE_FAILED_INIT; /* Cannot happen: the group has nlanes slots. */
  long forbid = l->socks > 0 ? l->on_conn + 1 >= s->per_conn : s->per_conn <= 1;
  if (curl_easy_setopt(easy, CURLOPT_SHARE, l->share) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, lane_open) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, l) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, lane_close) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, l) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, forbid) != CURLE_OK)
    return CURLE_FAILED_INIT;
  l->busy = 1;
  m->lane = l;
  return CURLE_OK;
}

/* Abort hook (runner thread): a message cut short must not reach the
 * server as a whole one, so its session is shut down before libcurl's
 * "done" step could send the end-of-data mark (see erpq_curl_async.h). */
static void smtp_abort(CURL *easy, void *ud, void *gud) {
  smsg *m = ud;
  (void)easy, (void)gud;
  if (m->lane && m->lane->fd >= 0)
    (void)shutdown(m->lane->fd, SHUT_RDWR);
}

static void msg_free(smsg *m) {
  curl_slist_free_all(m->rcpt);
  free(m->from);
  free(m->data);
  free(m);
}

/* Done callback (runner thread). */
static void smtp_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  smsg *m = ud;
  erpq_smtp *s = m->s;
  long code = 0, nconn = 0;
  if (!easy || curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
    code = 0;
  if (!easy || curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nconn) != CURLE_OK)
    nconn = 0;
  erpq_smtp_result r;
  memset(&r, 0, sizeof r);
  erpq_smtp_classify(rc, (int)code, m->reply, m->errbuf, &r);
  r.id = id;
  if (easy)
    curl_easy_cleanup(easy); /* Leaves the lane's share. */
  lane *l = m->lane;
  if (l) {
    /* The first message of a new session, or one more on the old one;
     * none when the session is gone (FORBID_REUSE, failure, cancel). */
    l->on_conn = l->socks == 0 ? 0 : nconn > 0 ? 1 : l->on_conn + 1;
    l->busy = 0;
  }
  erpq_smtp_done_fn done = m->done;
  void *dud = m->ud;
  msg_free(m);
  atomic_fetch_add(r.outcome == ERPQ_SMTP_ACCEPTED    ? &s->accepted
                   : r.outcome == ERPQ_SMTP_TEMPORARY ? &s->temporary
                                                      : &s->permanent,
                   1);
  atomic_fetch_sub(&s->pending, 1); /* s may be freed from here on. */
  done(&r, dud);
}

/* ---- Sending ------------------------------------------------------------------------ */

static size_t read_body(char *buf, size_t size, size_t n, void *ud) {
  smsg *m = ud;
  size_t want = size * n, left = m->len - m->off;
  if (want > left)
    want = left;
  memcpy(buf, m->data + m->off, want);
  m->off += want;
  return want;
}

static size_t on_reply(char *buf, size_t size, size_t n, void *ud) {
  smsg *m = ud;
  size_t len = size * n;
  /* Final lines only ("250 ok", not "250-SIZE"); QUIT's 221 is noise. */
  if (len >= 3 && (len == 3 || buf[3] != '-') && !(len >= 3 && !memcmp(buf, "221", 3))) {
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
      len--;
    if (len >= sizeof m->reply)
      len = sizeof m->reply - 1;
    memcpy(m->reply, buf, len);
    m->reply[len] = 0;
  }
  return size * n;
}

/* An envelope address goes into an SMTP command line: nothing that could
 * end or bend that line. */
static int bad_address(const char *a) {
  for (const unsigned char *p = (const unsigned char *)a; *p; p++)
    if (*p < 0x21 || *p == '<' || *p == '>' || *p == 0x7f)
      return 1;
  return 0;
}

/* Every option of a message's transfer but the lane's. 0 or -1. */
static int configure(erpq_smtp *s, smsg *m, CURL *e) {
  return !(!curl_easy_setopt(e, CURLOPT_URL, s->url) &&
           !curl_easy_setopt(e, CURLOPT_USE_SSL, s->use_ssl) &&
           !curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms) &&
           !curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms) &&
           !curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, s->reply_timeout_s) &&
           !curl_easy_setopt(e, CURLOPT_MAIL_FROM, m->from) &&
           !curl_easy_setopt(e, CURLOPT_MAIL_RCPT, m->rcpt) &&
           !curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) &&
           !curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body) &&
           !curl_easy_setopt(e, CURLOPT_READDATA, m) &&
           !curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)m->len) &&
           !curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_reply) &&
           !curl_easy_setopt(e, CURLOPT_HEADERDATA, m) &&
           !curl_easy_setopt(e, CURLOPT_ERRORBUFFER, m->errbuf) &&
           (!s->user || !curl_easy_setopt(e, CURLOPT_USERNAME, s->user)) &&
           (!s->password || !curl_easy_setopt(e, CURLOPT_PASSWORD, s->password)) &&
           (!s->ca_file || !curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file)));
}

int erpq_smtp_send(erpq_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                   const void *msg, size_t len, erpq_smtp_done_fn done, void *ud, uint64_t *id,
                   char *err, size_t errlen) {
  if (!s || !from || !rcpt || !nrcpt || (!msg && len) || !done)
    return erpq_fail(err, errlen, -EINVAL, "smtp: sender, recipients and callback are required");
  if (bad_address(from))
    return erpq_fail(err, errlen, -EINVAL, "smtp: the envelope sender holds a forbidden character");
  for (size_t i = 0; i < nrcpt; i++)
    if (!rcpt[i] || !*rcpt[i] || bad_address(rcpt[i]))
      return erpq_fail(err, errlen, -EINVAL,
                       "smtp: envelope recipient %zu is empty or holds a forbidden character",
                       i + 1);
  smsg *m = calloc(1, sizeof *m);
  if (!m)
    return erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
  m->s = s;
  m->done = done;
  m->ud = ud;
  m->len = len;
  m->from = strdup(from);
  m->data = malloc(len ? len : 1);
  int ok = m->from && m->data;
  if (ok && len)
    memcpy(m->data, msg, len);
  for (size_t i = 0; ok && i < nrcpt; i++) {
    struct curl_slist *n = curl_slist_append(m->rcpt, rcpt[i]);
    if (!n)
      ok = 0;
    else
      m->rcpt = n;
  }
  if (!ok) {
    msg_free(m);
    return erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
  }
  atomic_fetch_add(&s->pending, 1);
  atomic_fetch_add(&s->sent, 1);
  /* The easy handle is made by the start hook when the message gets a
   * lane: a queued message costs its own bytes only. */
  int rc = erpq_curl_async_submit(s->runner, s->group, NULL, smtp_done, m, id);
  if (rc) {
    atomic_fetch_sub(&s->pending, 1);
    atomic_fetch_sub(&s->sent, 1);
    msg_free(m);
    return erpq_fail(err, errlen, rc, "smtp: cannot submit: %s", erpq_strerror(rc));
  }
  return 0;
}

int erpq_smtp_cancel(erpq_smtp *s, uint64_t id) { return erpq_curl_async_cancel(s->runner, id); }

void erpq_smtp_stats_get(erpq_smtp *s, erpq_smtp_stats *st) {
  st->sent = atomic_load(&s->sent);
  st->accepted = atomic_load(&s->accepted);
  st->temporary = atomic_load(&s->temporary);
  st->permanent = atomic_load(&s->permanent);
  st->sessions_opened = atomic_load(&s->opened);
  st->sessions_open = atomic_load(&s->open_now);
  st->sessions_max = atomic_load(&s->open_max);
}

/* ---- Configuration ----------------------------------------------------------------- */

static int parse_url(erpq_smtp *s, const char *url, char *err, size_t errlen) {
  CURLU *u = curl_url();
  if (!u)
    return erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
  char *scheme = NULL, *user = NULL, *pass = NULL, *query = NULL, *clean = NULL;
  int rc = 0;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMTP_URL is not a valid URL");
    goto out;
  }
  if (strcmp(scheme, "smtp") && strcmp(scheme, "smtps")) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMTP_URL must start with smtp:// or smtps://");
    goto out;
  }
  s->use_ssl = CURLUSESSL_TRY;
  if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
    if (!strcmp(query, "starttls=required"))
      s->use_ssl = CURLUSESSL_ALL;
    else if (strcmp(query, "starttls=try")) {
      rc =
          erpq_fail(err, errlen, ERPQ_E_ARG,
                    "ERPQ_SMTP_URL: the only query allowed is ?starttls=required or ?starttls=try");
      goto out;
    }
  }
  if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) == CURLUE_OK && user && *user)
    s->user = strdup(user);
  if (curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE) == CURLUE_OK && pass) {
    s->password = strdup(pass);
    explicit_bzero(pass, strlen(pass));
  }
  if (curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
      curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
      curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
      curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_URL, &clean, 0) != CURLUE_OK || !(s->url = strdup(clean)) ||
      (user && *user && !s->user) || (pass && !s->password)) {
    rc = erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
    goto out;
  }
  if (s->password && !s->user)
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMTP_URL has a password but no user name");
out:
  curl_free(scheme);
  curl_free(user);
  curl_free(pass);
  curl_free(query);
  curl_free(clean);
  curl_url_cleanup(u);
  return rc;
}

static void smtp_release(erpq_smtp *s) {
  for (int i = 0; s->lanes && i < s->nlanes; i++)
    if (s->lanes[i].share)
      curl_share_cleanup(s->lanes[i].share); /* QUIT, close. */
  free(s->lanes);
  free(s->url);
  free(s->user);
  erpq_conf_secret_free(s->password);
  free(s->ca_file);
  free(s);
}

int erpq_smtp_new(erpq_smtp **out, erpq_curl_async *runner, const erpq_conf_src *conf, char *err,
                  size_t errlen) {
  *out = NULL;
  erpq_smtp *s = calloc(1, sizeof *s);
  if (!s)
    return erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
  s->runner = runner;
  int rc;
  const char *url = erpq_conf_str(conf, "ERPQ_SMTP_URL");
  if (!url) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMTP_URL is not set");
    goto fail;
  }
  if ((rc = parse_url(s, url, err, errlen)))
    goto fail;
  const char *user = erpq_conf_str(conf, "ERPQ_SMTP_USER");
  char *pass = NULL;
  if ((rc = erpq_conf_secret_dup(conf, "ERPQ_SMTP_PASSWORD", &pass, err, errlen)))
    goto fail;
  if ((user || pass) && (s->user || s->password)) {
    erpq_conf_secret_free(pass);
    rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                   "give the SMTP credentials in ERPQ_SMTP_URL or in ERPQ_SMTP_USER and "
                   "ERPQ_SMTP_PASSWORD, not both");
    goto fail;
  }
  if (pass && !user) {
    erpq_conf_secret_free(pass);
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMTP_PASSWORD is set but ERPQ_SMTP_USER is not");
    goto fail;
  }
  if (user && !(s->user = strdup(user))) {
    erpq_conf_secret_free(pass);
    rc = erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
    goto fail;
  }
  if (pass)
    s->password = pass;
  int64_t v[5];
  if ((rc = erpq_conf_int(conf, "ERPQ_SMTP_CONNECTIONS", 4, 1, 256, &v[0], err, errlen)) ||
      (rc = erpq_conf_int(conf, "ERPQ_SMTP_MESSAGES_PER_CONNECTION", 100, 1, 1000000, &v[1], err,
                          errlen)) ||
      (rc = erpq_conf_int(conf, "ERPQ_SMTP_CONNECT_TIMEOUT_MS", 10000, 1, 600000, &v[2], err,
                          errlen)) ||
      (rc = erpq_conf_int(conf, "ERPQ_SMTP_TIMEOUT_MS", 60000, 1, 3600000, &v[3], err, errlen)) ||
      (rc =
           erpq_conf_int(conf, "ERPQ_SMTP_REPLY_TIMEOUT_MS", 30000, 1, 600000, &v[4], err, errlen)))
    goto fail;
  s->nlanes = (int)v[0];
  s->per_conn = (long)v[1];
  s->connect_timeout_ms = (long)v[2];
  s->timeout_ms = (long)v[3];
  s->reply_timeout_s = (long)((v[4] + 999) / 1000);
  const char *ca = erpq_conf_str(conf, "ERPQ_SMTP_CA_FILE");
  if (ca && access(ca, R_OK) != 0) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMTP_CA_FILE: cannot read %s: %s", ca,
                   strerror(errno));
    goto fail;
  }
  if (ca && !(s->ca_file = strdup(ca))) {
    rc = erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
    goto fail;
  }
  s->lanes = calloc((size_t)s->nlanes, sizeof *s->lanes);
  if (!s->lanes) {
    rc = erpq_fail(err, errlen, -ENOMEM, "smtp: out of memory");
    goto fail;
  }
  for (int i = 0; i < s->nlanes; i++) {
    lane *l = &s->lanes[i];
    l->s = s;
    l->fd = -1;
    l->share = curl_share_init();
    if (!l->share || curl_share_setopt(l->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) ||
        curl_share_setopt(l->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS)) {
      rc = erpq_fail(err, errlen, -ENOMEM, "smtp: cannot make a connection cache");
      goto fail;
    }
  }
  erpq_curl_group_hooks hooks = {.start = smtp_start, .abort = smtp_abort, .ud = s};
  if ((rc = erpq_curl_group_new(runner, s->nlanes, &hooks, &s->group, err, errlen)))
    goto fail;
  *out = s;
  return 0;
fail:
  smtp_release(s);
  return rc;
}

int erpq_smtp_free(erpq_smtp *s) {
  if (!s)
    return 0;
  if (atomic_load(&s->pending) > 0)
    return -EBUSY;
  smtp_release(s);
  return 0;
}
