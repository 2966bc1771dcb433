/* erpq_sms.c - see erpq_sms.h. */
#include "erpq_sms.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_err.h"
#include "erpq_redact.h"

#define MAX_BODY (64 * 1024)     /* Bytes of a response kept. */
#define MAX_DELAY (86400 * 1000) /* Clamp of Retry-After, ms. */

struct erpq_sms {
  erpq_curl_async *runner;
  erpq_curl_group *group;
  char *url, *sid, *token, *from, *ca_file;
  long connect_timeout_ms, timeout_ms;
  int64_t throttle_default_ms;
  struct curl_slist *headers; /* Read-only once made; shared by all requests. */
  atomic_long pending;
};

typedef struct sreq {
  erpq_sms *s;
  char *to, *from, *text; /* Copies of the caller's strings. */
  char *post;
  erpq_buf body;
  char retry_after[128];
  char errbuf[CURL_ERROR_SIZE];
  erpq_sms_done_fn done;
  void *ud;
} sreq;

const char *erpq_sms_outcome_name(erpq_sms_outcome o) {
  switch (o) {
  case ERPQ_SMS_ACCEPTED: return "ACCEPTED";
  case ERPQ_SMS_THROTTLED: return "THROTTLED";
  case ERPQ_SMS_TEMPORARY: return "TEMPORARY";
  case ERPQ_SMS_PERMANENT: return "PERMANENT";
  }
  return "?";
}

/* ---- Classification ------------------------------------------------------------- */

int64_t erpq_sms_retry_after_ms(const char *v, int64_t now) {
  if (!v)
    return -1;
  while (*v == ' ' || *v == '\t')
    v++;
  if (!*v)
    return -1;
  if (*v >= '0' && *v <= '9') {
    int64_t secs = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9'; p++)
      if ((secs = secs * 10 + (*p - '0')) > MAX_DELAY / 1000)
        secs = MAX_DELAY / 1000;
    while (*p == ' ' || *p == '\t')
      p++;
    return *p ? -1 : secs * 1000;
  }
  time_t t = curl_getdate(v, NULL);
  if (t == (time_t)-1)
    return -1;
  int64_t d = ((int64_t)t - now) * 1000;
  return d < 0 ? 0 : d > MAX_DELAY ? MAX_DELAY : d;
}

void erpq_sms_classify(int cc, int status, const char *retry_after, const char *body,
                       const char *cerr, int64_t dflt_ms, int64_t now, erpq_sms_result *r) {
  r->curl_code = cc;
  r->http_status = cc == CURLE_OK ? status : 0;
  r->error_code = 0;
  r->retry_after_ms = 0;
  r->server_wide = 0;
  r->sid[0] = 0;
  char text[256] = "";
  json_t *j = NULL;
  if (cc == CURLE_OK && body && *body)
    j = json_loads(body, 0, NULL);
  if (json_is_object(j)) {
    const json_t *code = json_object_get(j, "code"), *msg = json_object_get(j, "message"),
                 *sid = json_object_get(j, "sid");
    if (json_is_integer(code))
      r->error_code = (int)json_integer_value(code);
    if (json_is_string(msg))
      erpq_redact(json_string_value(msg), json_string_length(msg), text, sizeof text);
    if (json_is_string(sid))
      snprintf(r->sid, sizeof r->sid, "%s", json_string_value(sid));
  }
  json_decref(j);
  const char *what;
  if (cc == CURLE_ABORTED_BY_CALLBACK) {
    r->outcome = ERPQ_SMS_TEMPORARY;
    what = "send cancelled";
  } else if (cc != CURLE_OK) {
    r->outcome = ERPQ_SMS_TEMPORARY;
    r->server_wide = cc != CURLE_OPERATION_TIMEDOUT;
    what = cc == CURLE_OPERATION_TIMEDOUT ? "request timed out" : "connection failed";
    if (cerr && *cerr)
      erpq_redact(cerr, strlen(cerr), text, sizeof text);
  } else if (status >= 200 && status < 300) {
    r->outcome = ERPQ_SMS_ACCEPTED;
    what = "accepted";
    text[0] = 0;
  } else if (status == 429) {
    r->outcome = ERPQ_SMS_THROTTLED;
    r->server_wide = 1;
    int64_t d = erpq_sms_retry_after_ms(retry_after, now);
    r->retry_after_ms = d >= 0 ? d : dflt_ms;
    what = "throttled";
  } else if (status >= 500 || status == 408) {
    r->outcome = ERPQ_SMS_TEMPORARY;
    int64_t d = erpq_sms_retry_after_ms(retry_after, now);
    r->retry_after_ms = d >= 0 ? d : 0;
    what = "gateway error";
  } else if (status >= 400) {
    r->outcome = ERPQ_SMS_PERMANENT;
    r->server_wide = status == 401 || status == 403;
    what = r->server_wide ? "authentication refused" : "message refused";
  } else {
    r->outcome = ERPQ_SMS_TEMPORARY;
    r->server_wide = 1;
    what = "unexpected answer";
  }
  char codes[48] = "";
  if (r->http_status && r->error_code)
    snprintf(codes, sizeof codes, " (HTTP %d, code %d)", r->http_status, r->error_code);
  else if (r->http_status)
    snprintf(codes, sizeof codes, " (HTTP %d)", r->http_status);
  /* A long provider text is cut here on purpose. */
  if (snprintf(r->message, sizeof r->message, "%s%s%s%s", what, codes, *text ? ": " : "", text) < 0)
    r->message[0] = 0;
}

/* ---- Requests --------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  sreq *q = ud;
  size_t len = size * n;
  if (q->body.len < MAX_BODY)
    erpq_buf_add(&q->body, p, len < MAX_BODY ? len : MAX_BODY);
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  sreq *q = ud;
  size_t len = size * n;
  if (len >= 5 && !strncmp(p, "HTTP/", 5))
    q->retry_after[0] = 0; /* A new response. */
  if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
    size_t vl = len - 12;
    const char *v = p + 12;
    while (vl && (*v == ' ' || *v == '\t'))
      v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
      vl--;
    if (vl >= sizeof q->retry_after)
      vl = sizeof q->retry_after - 1;
    memcpy(q->retry_after, v, vl);
    q->retry_after[vl] = 0;
  }
  return len;
}

static void req_free(sreq *q) {
  free(q->to);
  free(q->from);
  free(q->text);
  erpq_buf_free(&q->body);
  free(q->post);
  free(q);
}

static void sms_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  sreq *q = ud;
  erpq_sms *s = q->s;
  long status = 0;
  if (!easy || curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
    status = 0;
  erpq_sms_result r;
  memset(&r, 0, sizeof r);
  erpq_sms_classify(rc, (int)status, q->retry_after[0] ? q->retry_after : NULL,
                    q->body.oom ? NULL : q->body.s, q->errbuf, s->throttle_default_ms,
                    (int64_t)time(NULL), &r);
  r.id = id;
  if (easy)
    curl_easy_cleanup(easy);
  erpq_sms_done_fn done = q->done;
  void *dud = q->ud;
  req_free(q);
  atomic_fetch_sub(&s->pending, 1); /* s may be freed from here on. */
  done(&r, dud);
}

/* Appends name=escaped(value) to b. */
static int add_field(erpq_buf *b, CURL *e, const char *name, const char *value) {
  char *esc = curl_easy_escape(e, value, 0);
  if (!esc)
    return -1;
  erpq_buf_addf(b, "%s%s=%s", b->len ? "&" : "", name, esc);
  curl_free(esc);
  return 0;
}

/* Start hook (runner thread): makes the request's easy handle, so that a
 * queued request costs its own strings only. */
static CURLcode sms_start(CURL **out, void *ud, void *gud) {
  sreq *q = ud;
  erpq_sms *s = gud;
  CURL *e = *out = curl_easy_init();
  if (!e)
    return CURLE_OUT_OF_MEMORY;
  erpq_buf form = {0};
  int ok = !add_field(&form, e, "To", q->to) && !add_field(&form, e, "From", q->from) &&
           !add_field(&form, e, "Body", q->text) && (q->post = erpq_buf_take(&form));
  erpq_buf_free(&form);
  ok = ok && !curl_easy_setopt(e, CURLOPT_URL, s->url) && !curl_easy_setopt(e, CURLOPT_POST, 1L) &&
       !curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->post) &&
       !curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(q->post)) &&
       !curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers) &&
       !curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) &&
       !curl_easy_setopt(e, CURLOPT_USERNAME, s->sid) &&
       !curl_easy_setopt(e, CURLOPT_PASSWORD, s->token) &&
       !curl_easy_setopt(e, CURLOPT_USERAGENT, "erpq/" ERPQ_VERSION) &&
       !curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms) &&
       !curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms) &&
       !curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) &&
       !curl_easy_setopt(e, CURLOPT_WRITEDATA, q) &&
       !curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) &&
       !curl_easy_setopt(e, CURLOPT_HEADERDATA, q) &&
       !curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf) &&
       (!s->ca_file || !curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file));
  return ok ? CURLE_OK : CURLE_OUT_OF_MEMORY;
}

int erpq_sms_send(erpq_sms *s, const char *to, const char *from, const char *body,
                  erpq_sms_done_fn done, void *ud, uint64_t *id, char *err, size_t errlen) {
  if (!from)
    from = s->from;
  if (!to || !*to || !body || !*body || !from || !*from || !done)
    return erpq_fail(err, errlen, -EINVAL, "sms: To, From, Body and a callback are required");
  sreq *q = calloc(1, sizeof *q);
  if (!q)
    return erpq_fail(err, errlen, -ENOMEM, "sms: out of memory");
  q->s = s;
  q->done = done;
  q->ud = ud;
  q->to = strdup(to);
  q->from = strdup(from);
  q->text = strdup(body);
  if (!q->to || !q->from || !q->text) {
    req_free(q);
    return erpq_fail(err, errlen, -ENOMEM, "sms: out of memory");
  }
  atomic_fetch_add(&s->pending, 1);
  int rc = erpq_curl_async_submit(s->runner, s->group, NULL, sms_done, q, id);
  if (rc) {
    atomic_fetch_sub(&s->pending, 1);
    req_free(q);
    return erpq_fail(err, errlen, rc, "sms: cannot submit: %s", erpq_strerror(rc));
  }
  return 0;
}

int erpq_sms_cancel(erpq_sms *s, uint64_t id) { return erpq_curl_async_cancel(s->runner, id); }

/* ---- Configuration ------------------------------------------------------------------ */

static void sms_release(erpq_sms *s) {
  curl_slist_free_all(s->headers);
  free(s->url);
  free(s->sid);
  erpq_conf_secret_free(s->token);
  free(s->from);
  free(s->ca_file);
  free(s);
}

static int check_base(const char *base, char *err, size_t errlen) {
  CURLU *u = curl_url();
  char *scheme = NULL, *user = NULL, *query = NULL;
  int rc = 0;
  if (!u)
    return erpq_fail(err, errlen, -ENOMEM, "sms: out of memory");
  if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMS_URL is not a valid URL");
  else if (strcmp(scheme, "http") && strcmp(scheme, "https"))
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMS_URL must start with http:// or https://");
  else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
           curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
    rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                   "ERPQ_SMS_URL must hold neither credentials nor a query (use "
                   "ERPQ_SMS_ACCOUNT_SID and ERPQ_SMS_AUTH_TOKEN)");
  curl_free(scheme);
  curl_free(user);
  curl_free(query);
  curl_url_cleanup(u);
  return rc;
}

int erpq_sms_new(erpq_sms **out, erpq_curl_async *runner, const erpq_conf_src *conf, char *err,
                 size_t errlen) {
  *out = NULL;
  erpq_sms *s = calloc(1, sizeof *s);
  if (!s)
    return erpq_fail(err, errlen, -ENOMEM, "sms: out of memory");
  s->runner = runner;
  int rc;
  const char *base = erpq_conf_str(conf, "ERPQ_SMS_URL"),
             *sid = erpq_conf_str(conf, "ERPQ_SMS_ACCOUNT_SID"),
             *from = erpq_conf_str(conf, "ERPQ_SMS_FROM"),
             *ca = erpq_conf_str(conf, "ERPQ_SMS_CA_FILE");
  if (!base) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMS_URL is not set");
    goto fail;
  }
  if ((rc = check_base(base, err, errlen)))
    goto fail;
  if (!sid) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMS_ACCOUNT_SID is not set");
    goto fail;
  }
  if (strlen(sid) > 64 || strspn(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789") != strlen(sid)) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                   "ERPQ_SMS_ACCOUNT_SID must be 1 to 64 letters and digits");
    goto fail;
  }
  if ((rc = erpq_conf_secret_dup(conf, "ERPQ_SMS_AUTH_TOKEN", &s->token, err, errlen)))
    goto fail;
  if (!s->token) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                   "ERPQ_SMS_AUTH_TOKEN (or ERPQ_SMS_AUTH_TOKEN_FILE) is not set");
    goto fail;
  }
  if (!from) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMS_FROM is not set");
    goto fail;
  }
  int64_t v[4];
  if ((rc = erpq_conf_int(conf, "ERPQ_SMS_CONNECTIONS", 4, 1, 256, &v[0], err, errlen)) ||
      (rc = erpq_conf_int(conf, "ERPQ_SMS_CONNECT_TIMEOUT_MS", 10000, 1, 600000, &v[1], err,
                          errlen)) ||
      (rc = erpq_conf_int(conf, "ERPQ_SMS_TIMEOUT_MS", 30000, 1, 3600000, &v[2], err, errlen)) ||
      (rc = erpq_conf_int(conf, "ERPQ_SMS_THROTTLE_DEFAULT_MS", 1000, 0, MAX_DELAY, &v[3], err,
                          errlen)))
    goto fail;
  s->connect_timeout_ms = (long)v[1];
  s->timeout_ms = (long)v[2];
  s->throttle_default_ms = v[3];
  if (ca && access(ca, R_OK) != 0) {
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_SMS_CA_FILE: cannot read %s: %s", ca,
                   strerror(errno));
    goto fail;
  }
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/')
    bl--;
  erpq_buf u = {0};
  erpq_buf_addf(&u, "%.*s/2010-04-01/Accounts/%s/Messages.json", (int)bl, base, sid);
  s->url = erpq_buf_take(&u);
  s->sid = strdup(sid);
  s->from = strdup(from);
  s->ca_file = ca ? strdup(ca) : NULL;
  s->headers = curl_slist_append(NULL, "Accept: application/json");
  if (!s->url || !s->sid || !s->from || (ca && !s->ca_file) || !s->headers) {
    rc = erpq_fail(err, errlen, -ENOMEM, "sms: out of memory");
    goto fail;
  }
  erpq_curl_group_hooks hooks = {.start = sms_start, .ud = s};
  if ((rc = erpq_curl_group_new(runner, (int)v[0], &hooks, &s->group, err, errlen)))
    goto fail;
  *out = s;
  return 0;
fail:
  sms_release(s);
  return rc;
}

int erpq_sms_free(erpq_sms *s) {
  if (!s)
    return 0;
  if (atomic_load(&s->pending) > 0)
    return -EBUSY;
  sms_release(s);
  return 0;
}
