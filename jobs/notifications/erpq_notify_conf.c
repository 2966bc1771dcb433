/* erpq_notify_conf.c - the family's settings (erpq_notifications.h lists
 * them) read into nt_conf through the worker's settings lookup. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_datapath.h"
#include "erpq_email_addr.h"
#include "erpq_err.h"
#include "erpq_notify_internal.h"

static const char *get(const erpq_family_env *env, const char *name) {
  const char *v = erpq_args_env(env->args, name);
  return v && *v ? v : NULL;
}

static int64_t geti(const erpq_family_env *env, const char *name, int64_t dflt) {
  const char *v = get(env, name);
  return v ? strtoll(v, NULL, 10) : dflt;
}

static void gets_(const erpq_family_env *env, const char *name, const char *dflt, char *out,
                  size_t n) {
  const char *v = get(env, name);
  snprintf(out, n, "%s", v ? v : dflt);
}

/* "smtp-<host>" from a URL, with characters a Redis key part should not
 * hold replaced by '_'. */
static void provider_name(const char *kind, const char *url, char *out, size_t n) {
  const char *h = url ? strstr(url, "://") : NULL;
  h = h ? h + 3 : "";
  const char *end = h + strcspn(h, "/?#");
  const char *at = NULL;
  for (const char *p = h; p < end; p++)
    if (*p == '@')
      at = p;
  if (at)
    h = at + 1;
  int len = snprintf(out, n, "%s-", kind);
  for (const char *p = h; p < end && len + 1 < (int)n; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '.' || c == ':';
    out[len++] = ok ? c : '_';
  }
  out[len] = '\0';
  if (len == (int)strlen(kind) + 1 && len + 7 < (int)n)
    strcat(out, "default");
}

/* ERPQ_MAIL_FROM: "Name <addr@domain>" or "addr@domain". */
static int parse_from(const char *v, nt_conf *c, char *err, size_t errlen) {
  const char *lt = strrchr(v, '<');
  char addr[300] = "";
  if (lt) {
    const char *gt = strchr(lt, '>');
    if (!gt || gt[1])
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "ERPQ_MAIL_FROM: expected \"Name <address>\" or an address");
    snprintf(addr, sizeof addr, "%.*s", (int)(gt - lt - 1), lt + 1);
    size_t nl = (size_t)(lt - v);
    while (nl && (v[nl - 1] == ' ' || v[nl - 1] == '\t'))
      nl--;
    const char *nm = v;
    while (nl && (*nm == ' ' || *nm == '"'))
      nm++, nl--;
    while (nl && nm[nl - 1] == '"')
      nl--;
    snprintf(c->mail_from_name, sizeof c->mail_from_name, "%.*s", (int)nl, nm);
  } else {
    snprintf(addr, sizeof addr, "%s", v);
  }
  char why[128];
  if (erpq_email_addr_normalize(addr, c->mail_from_addr, sizeof c->mail_from_addr, why, sizeof why))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_MAIL_FROM: %s", why);
  snprintf(c->msgid_domain, sizeof c->msgid_domain, "%s", strchr(c->mail_from_addr, '@') + 1);
  return 0;
}

int nt_conf_read(nt_conf *c, const erpq_family_env *env, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  const char *v;
  if ((v = get(env, "ERPQ_MAIL_FROM"))) {
    int rc = parse_from(v, c, err, errlen);
    if (rc)
      return rc;
  } else if (get(env, "ERPQ_SMTP_URL")) {
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "ERPQ_SMTP_URL is set but ERPQ_MAIL_FROM is not: set the sender, "
                     "for example \"Sunrise School <office@school.example>\"");
  }
  gets_(env, "ERPQ_UNSUBSCRIBE_URL", "", c->unsub_url, sizeof c->unsub_url);
  gets_(env, "ERPQ_UNSUBSCRIBE_MAILTO", "", c->unsub_mailto, sizeof c->unsub_mailto);
  if (c->unsub_url[0]) {
    if (strncmp(c->unsub_url, "https://", 8) || strpbrk(c->unsub_url, "?#\"<> \t\r\n"))
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "ERPQ_UNSUBSCRIBE_URL must be an https:// URL without query or fragment "
                       "(RFC 8058 one-click unsubscribe needs https)");
    if (!(v = get(env, "ERPQ_UNSUBSCRIBE_SECRET")) || strlen(v) < 32)
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "ERPQ_UNSUBSCRIBE_URL needs ERPQ_UNSUBSCRIBE_SECRET (or _FILE), at least "
                       "32 bytes, to sign the links");
    if (!(c->unsub_secret = strdup(v)))
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  if (c->unsub_mailto[0]) {
    char why[128], norm[300];
    if (erpq_email_addr_normalize(c->unsub_mailto, norm, sizeof norm, why, sizeof why))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "ERPQ_UNSUBSCRIBE_MAILTO: %s", why);
    snprintf(c->unsub_mailto, sizeof c->unsub_mailto, "%s", norm);
  }
  gets_(env, "ERPQ_NOTIFY_PAY_URL", "", c->pay_url, sizeof c->pay_url);
  gets_(env, "ERPQ_NOTIFY_EMAIL_QUEUE", "email", c->email_queue, sizeof c->email_queue);
  gets_(env, "ERPQ_NOTIFY_SMS_QUEUE", "sms", c->sms_queue, sizeof c->sms_queue);
  gets_(env, "ERPQ_NOTIFY_REPORTS_QUEUE", "reports", c->reports_queue, sizeof c->reports_queue);
  gets_(env, "ERPQ_PREFIX", "bull", c->prefix, sizeof c->prefix);
  c->page_size = (int)geti(env, "ERPQ_NOTIFY_PAGE_SIZE", 500);
  c->send_attempts = (int)geti(env, "ERPQ_NOTIFY_ATTEMPTS", 5);
  c->send_backoff_ms = geti(env, "ERPQ_NOTIFY_BACKOFF_MS", 30000);
  c->keep_completed_s = geti(env, "ERPQ_NOTIFY_KEEP_COMPLETED_S", 86400);
  c->lease_ms = geti(env, "ERPQ_NOTIFY_LEASE_MS", 300000);
  c->ledger_batch = (int)geti(env, "ERPQ_NOTIFY_BATCH", 200);
  c->sms_default_cc = (int)geti(env, "ERPQ_SMS_DEFAULT_COUNTRY", 91);
  c->sms_max_segments = (int)geti(env, "ERPQ_SMS_MAX_SEGMENTS", 10);
  c->max_attachment_bytes = geti(env, "ERPQ_MAIL_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024);
  int64_t margin = geti(env, "ERPQ_NOTIFY_RATE_MARGIN_MS", 100);
  const char *rate_var[NT_NCH] = {"ERPQ_SMTP_RATE", "ERPQ_SMS_RATE"};
  const char *day_var[NT_NCH] = {"ERPQ_SMTP_DAILY_LIMIT", "ERPQ_SMS_DAILY_LIMIT"};
  const char *conns_var[NT_NCH] = {"ERPQ_SMTP_CONNECTIONS", "ERPQ_SMS_CONNECTIONS"};
  const char *url_var[NT_NCH] = {"ERPQ_SMTP_URL", "ERPQ_SMS_URL"};
  for (int ch = 0; ch < NT_NCH; ch++) {
    nt_limits_conf *l = &c->lim[ch];
    l->per_window = geti(env, rate_var[ch], 0);
    l->window_ms = 1000 + margin;
    l->per_day = geti(env, day_var[ch], 0);
    l->threshold = geti(env, "ERPQ_BREAKER_THRESHOLD", 5);
    l->open_ms = geti(env, "ERPQ_BREAKER_OPEN_MS", 30000);
    l->max_open_ms = geti(env, "ERPQ_BREAKER_MAX_OPEN_MS", 600000);
    l->probe_ms = geti(env, "ERPQ_BREAKER_PROBE_MS", 60000);
    int64_t conns = geti(env, conns_var[ch], 4);
    /* Rate-limited: no more in flight than connections, so a granted message
     * goes out at once and does not queue behind others (its slot is
     * counted from the grant). Otherwise a few per connection. */
    c->in_flight[ch] = (int)(conns * (l->per_window > 0 ? 1 : 8));
    provider_name(ch == NT_EMAIL ? "smtp" : "sms", get(env, url_var[ch]), c->provider[ch],
                  sizeof c->provider[ch]);
  }
  if ((v = get(env, "ERPQ_MONGO_URL")) && !(c->mongo_url = strdup(v)))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  if ((v = get(env, "ERPQ_REDIS_URL")) && !(c->redis_url = strdup(v)))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  gets_(env, "ERPQ_MONGO_DB", "erp", c->mongo_db, sizeof c->mongo_db);
  c->relay_batch = (int)geti(env, "ERPQ_OUTBOX_BATCH", 500);
  c->relay_idle_ms = geti(env, "ERPQ_OUTBOX_IDLE_MS", 1000);
  c->relay_log_ms = geti(env, "ERPQ_OUTBOX_LOG_MS", 30000);
  char why[1024];
  const char *tdir = erpq_args_str(env->args, "templates-dir");
  if (erpq_datapath("templates", tdir, erpq_args_origin(env->args, "templates-dir"),
                    c->templates_dir, sizeof c->templates_dir, why, sizeof why))
    return erpq_fail(err, errlen, -ENOENT, "templates: %s", why);
  return 0;
}

void nt_conf_clear(nt_conf *c) {
  if (c->unsub_secret) {
    memset(c->unsub_secret, 0, strlen(c->unsub_secret));
    free(c->unsub_secret);
  }
  if (c->mongo_url) {
    memset(c->mongo_url, 0, strlen(c->mongo_url));
    free(c->mongo_url);
  }
  if (c->redis_url) {
    memset(c->redis_url, 0, strlen(c->redis_url));
    free(c->redis_url);
  }
  memset(c, 0, sizeof *c);
}
