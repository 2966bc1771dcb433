/*
 * erpq_sms.h - an asynchronous client for a Twilio-compatible Messages API.
 *
 * What it does. erpq_sms_send() posts one message to
 *   {ERPQ_SMS_URL}/2010-04-01/Accounts/{ERPQ_SMS_ACCOUNT_SID}/Messages.json
 * as application/x-www-form-urlencoded To, From and Body (each escaped with
 * curl_easy_escape(), so '+', '&', '=' and UTF-8 arrive as they were
 * sent), with HTTP Basic authentication (account SID : auth token), on the
 * curl runner (lib/curl/erpq_curl_async.h). The To/From/Body strings are
 * taken as they are: the E.164 check and GSM-7/UCS-2 segmenting happen
 * before (erpq_e164, erpq_sms_text).
 *
 * Configuration (read once by erpq_sms_new() through the caller's lookup
 * callback, see erpq_transport_conf.h):
 *   ERPQ_SMS_URL            base URL, http(s)://host[:port][/prefix], e.g.
 *                           https://api.twilio.com (a trailing '/' is
 *                           dropped).
 *   ERPQ_SMS_ACCOUNT_SID    letters and digits only (it goes into the
 *                           path and is the Basic-auth user).
 *   ERPQ_SMS_AUTH_TOKEN (or ERPQ_SMS_AUTH_TOKEN_FILE)   the secret.
 *   ERPQ_SMS_FROM           the default sender (a send may override it).
 *   ERPQ_SMS_CONNECTIONS    requests in flight at most (default 4): the
 *                           client's group in the runner has that many
 *                           slots, so with HTTP/1.1 it never holds more
 *                           connections (with HTTP/2 they share fewer).
 *   ERPQ_SMS_CONNECT_TIMEOUT_MS (default 10000), ERPQ_SMS_TIMEOUT_MS
 *                           (whole request, default 30000).
 *   ERPQ_SMS_THROTTLE_DEFAULT_MS  the delay when a 429 has no usable
 *                           Retry-After (default 1000).
 *   ERPQ_SMS_CA_FILE        CA bundle (default: the system's).
 * A bad setting fails erpq_sms_new() with a sentence naming the variable;
 * it never repeats the token.
 *
 * Outcomes (erpq_sms_result):
 *   ACCEPTED   2xx; sid is the provider's message sid from the JSON body.
 *   THROTTLED  429; retry_after_ms from Retry-After (delta seconds or an
 *              HTTP-date; clamped to [0, 24 h]), else the default.
 *   TEMPORARY  5xx, 408, connection errors, timeouts, TLS failures,
 *              cancellation, any unexpected status: retry later (a 503's
 *              Retry-After is reported too).
 *   PERMANENT  any other 4xx (a wrong token's 401 included), with the
 *              provider's numeric error "code" and its "message".
 * http_status is the HTTP status (0: no answer); error_code the
 * provider's code (0: none); server_wide is set when the failure is not
 * about this message (401/403 authentication, connection, TLS, 429):
 * a handler should pause the run. message is one sentence for logs, the
 * provider's text passed through erpq_redact(): no phone number in it.
 * A timeout after the request was sent is TEMPORARY though the provider
 * may have queued the message: a retry can send it twice (the API has no
 * idempotency key).
 *
 * Requests wait in the runner's queue as their three strings; the easy
 * handle is made by the group's start hook when a slot frees.
 *
 * Threads and ownership: as erpq_smtp.h. erpq_sms_send() is thread-safe
 * and copies its strings; done runs exactly once on the runner thread
 * unless send fails (-EINVAL for a NULL/empty To or Body or no sender,
 * -ENOMEM, -ESHUTDOWN). erpq_sms_free() needs every send completed
 * (-EBUSY otherwise). The runner is borrowed and must outlive the client.
 */
#ifndef ERPQ_SMS_H
#define ERPQ_SMS_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_curl_async.h"
#include "erpq_transport_conf.h"

typedef enum {
  ERPQ_SMS_ACCEPTED,
  ERPQ_SMS_THROTTLED,
  ERPQ_SMS_TEMPORARY,
  ERPQ_SMS_PERMANENT,
} erpq_sms_outcome;

typedef struct erpq_sms_result {
  erpq_sms_outcome outcome;
  int http_status;
  int error_code;
  int64_t retry_after_ms;
  int server_wide;
  int curl_code;
  uint64_t id;
  char sid[72];
  char message[256];
} erpq_sms_result;

typedef void (*erpq_sms_done_fn)(const erpq_sms_result *r, void *ud);

typedef struct erpq_sms erpq_sms;

int erpq_sms_new(erpq_sms **out, erpq_curl_async *runner, const erpq_conf_src *conf, char *err,
                 size_t errlen);
/* Sends body to `to` from `from` (NULL: ERPQ_SMS_FROM). */
int erpq_sms_send(erpq_sms *s, const char *to, const char *from, const char *body,
                  erpq_sms_done_fn done, void *ud, uint64_t *id, char *err, size_t errlen);
int erpq_sms_cancel(erpq_sms *s, uint64_t id);
int erpq_sms_free(erpq_sms *s);

const char *erpq_sms_outcome_name(erpq_sms_outcome o);

/* The delay a Retry-After value asks for, in ms, at time now (seconds
 * since the epoch); -1 when the value is not usable. */
int64_t erpq_sms_retry_after_ms(const char *value, int64_t now);

/* The classification itself, exposed for tests: libcurl's result, the
 * HTTP status, the Retry-After value (may be NULL), the response body
 * (may be NULL) and libcurl's error text (may be NULL). */
void erpq_sms_classify(int curl_code, int http_status, const char *retry_after, const char *body,
                       const char *curl_error, int64_t default_throttle_ms, int64_t now,
                       erpq_sms_result *r);

#endif
