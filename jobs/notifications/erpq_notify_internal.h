/*
 * erpq_notify_internal.h - the notifications family's parts, shared by its
 * files and its tests. The design is described in erpq_notifications.h;
 * this header holds the structures and who owns them.
 *
 * nt_ctx (one per worker process, made by init, freed by shutdown) owns
 * the configuration, the template store, the MySQL pool of the fan-out
 * handlers, the curl runner with the SMTP sender and SMS client, one
 * dispatcher per channel (nt_pipe), the ledger (MySQL state of sends) and
 * the outbox relay.
 *
 * nt_send is one message on its way. The handler that makes it owns it
 * until it hands it to the ledger (nt_ledger_claim); from then on exactly
 * one stage holds it at a time, and only that stage may finish its job:
 *
 *   CLAIM    in the ledger's claim queue (its claims thread)
 *   READY    in its channel's dispatcher queue (dispatcher thread)
 *   FLIGHT   with the transport (the runner thread calls back; the
 *            dispatcher takes the outcome)
 *   OUTCOME  in the ledger's outcome queue (its outcomes thread), which records
 *            it and finishes the job (nt_send_finish frees the send).
 *
 * Cancellation (erpq_job_on_cancel, on the loop thread) never finishes a
 * job itself: it looks the send up in the registry (a map from job context
 * to send, under reg_mu, so a late callback finds nothing once the send
 * is finished), sets `cancelled`, aborts a transfer in FLIGHT and wakes
 * the stage's thread, which then ends the job.
 */
#ifndef ERPQ_NOTIFY_INTERNAL_H
#define ERPQ_NOTIFY_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_curl_async.h"
#include "erpq_e164.h"
#include "erpq_family.h"
#include "erpq_job.h"
#include "erpq_mysql.h"
#include "erpq_notify_limits.h"
#include "erpq_sms.h"
#include "erpq_smtp.h"
#include "erpq_templates.h"

typedef enum { NT_EMAIL = 0, NT_SMS = 1, NT_NCH = 2 } nt_channel;
const char *nt_channel_name(nt_channel ch); /* "email", "sms" */

typedef enum {
  NT_STAGE_NEW,
  NT_STAGE_CLAIM,
  NT_STAGE_READY,
  NT_STAGE_FLIGHT,
  NT_STAGE_OUTCOME
} nt_stage;

typedef enum {
  NT_OUT_NONE = 0,
  NT_OUT_ACCEPTED,
  NT_OUT_TEMPORARY,
  NT_OUT_PERMANENT,
  NT_OUT_THROTTLED,
  NT_OUT_CANCELLED
} nt_outcome;

typedef enum { NT_CLAIMED = 1, NT_ALREADY_SENT, NT_BUSY } nt_claim_result;

typedef struct nt_ctx nt_ctx;

typedef struct nt_send {
  struct nt_send *next; /* Link in the queue of the stage holding it. */
  nt_ctx *nc;
  erpq_jobctx *job;
  nt_channel ch;
  nt_stage stage; /* Under nc->reg_mu. */
  atomic_int cancelled;
  /* What the record says (never an address in clear). */
  int64_t school;
  char dedup_hash[65];
  char dedup_key[520]; /* data.dedupKey, else "<prefix>:<queue>:<jobId>" */
  char owner[520];     /* "<prefix>:<queue>:<jobId>": the job holding the claim */
  char queue[128], job_id[256];
  char tmpl[65], locale[36];
  char masked[600];  /* the recipients, masked, comma-separated */
  int final_attempt; /* this is the job's last attempt */
  /* E-mail: the message and its envelope. */
  char *msg;
  size_t msg_len;
  char **rcpt;
  size_t nrcpt;
  char message_id[160];
  /* SMS. */
  char to[ERPQ_E164_BUFSZ];
  char *body;
  int segments;
  char encoding[8];
  /* From the claim. */
  nt_claim_result claim;
  int64_t busy_ms;    /* NT_BUSY: the other holder's lease left */
  int64_t created_ms; /* the row's created_at */
  int version;        /* record_version before this attempt */
  int attempts;       /* provider attempts before this one */
  char prev_provider_id[160];
  /* In flight. */
  uint64_t tid;
  int probe; /* the breaker's half-open probe */
  /* The outcome. */
  nt_outcome out;
  int breaker_fail; /* counts against the provider (breaker 'F') */
  int64_t retry_after_ms;
  int64_t sent_ms;
  char provider_id[160];
  char error[320]; /* redacted */
} nt_send;

/* ---- Settings (erpq_notify_conf.c) ------------------------------------------- */

typedef struct nt_conf {
  char mail_from_name[200], mail_from_addr[256], msgid_domain[200];
  char unsub_url[512], unsub_mailto[300], pay_url[512];
  char *unsub_secret; /* malloc'ed; wiped on free */
  char email_queue[128], sms_queue[128], reports_queue[128];
  int page_size, send_attempts, sms_default_cc, sms_max_segments;
  int64_t send_backoff_ms, keep_completed_s, lease_ms, max_attachment_bytes;
  int ledger_batch;
  nt_limits_conf lim[NT_NCH];
  char provider[NT_NCH][200]; /* provider names for the Redis keys */
  int in_flight[NT_NCH];
  char prefix[128];
  char templates_dir[4096];
  /* The outbox relay. */
  char *mongo_url; /* malloc'ed (may hold a password); NULL: no relay */
  char *redis_url; /* The worker's Redis (malloc'ed, wiped): the backlog gauge. */
  char mongo_db[64];
  int relay_batch;
  int64_t relay_idle_ms, relay_log_ms;
} nt_conf;

int nt_conf_read(nt_conf *c, const erpq_family_env *env, char *err, size_t errlen);
void nt_conf_clear(nt_conf *c);

/* ---- The pipeline (erpq_notify_pipe.c) ----------------------------------------- */

typedef struct nt_pipe nt_pipe;

int nt_pipe_start(nt_pipe **out, nt_ctx *nc, nt_channel ch, char *err, size_t errlen);
/* A claimed send joins the dispatcher queue (stage READY). */
void nt_pipe_push(nt_pipe *p, nt_send *s);
/* Wakes the dispatcher (a send of its queue was cancelled). */
void nt_pipe_wake(nt_pipe *p);
/* Wall time (ms) until which the breaker is known to be open, else 0. */
int64_t nt_pipe_open_until(nt_pipe *p);
/* Ends every send the dispatcher still holds and stops its thread. */
void nt_pipe_stop(nt_pipe *p);
void nt_pipe_free(nt_pipe *p);

/* ---- The ledger (erpq_notify_ledger.c) ------------------------------------------- */

typedef struct nt_ledger nt_ledger;

int nt_ledger_start(nt_ledger **out, nt_ctx *nc, char *err, size_t errlen);
void nt_ledger_claim(nt_ledger *l, nt_send *s);   /* stage CLAIM */
void nt_ledger_outcome(nt_ledger *l, nt_send *s); /* stage OUTCOME */
void nt_ledger_wake(nt_ledger *l);
/* Processes what is queued, ends every job and stops the thread. */
void nt_ledger_stop(nt_ledger *l);
void nt_ledger_free(nt_ledger *l);

/* ---- The outbox relay (erpq_notify_relay.c) ----------------------------------------- */

typedef struct nt_relay nt_relay;
int nt_relay_start(nt_relay **out, const erpq_mysql_conf *db, const nt_conf *c, char *err,
                   size_t errlen);
void nt_relay_stop(nt_relay *r);

/* ---- The context -------------------------------------------------------------------- */

struct nt_ctx {
  nt_conf conf;
  erpq_templates *tpl;
  erpq_mysql_conf db;
  erpq_mysql_pool *pool; /* fan-out handlers */
  erpq_curl_async *runner;
  erpq_smtp *smtp;                  /* NULL when ERPQ_SMTP_URL is unset */
  erpq_sms *sms;                    /* NULL when ERPQ_SMS_URL is unset */
  char smtp_off[256], sms_off[256]; /* why a transport is off */
  nt_pipe *pipe[NT_NCH];
  nt_ledger *ledger;
  nt_relay *relay;
  void *storage; /* erpq_storage *, for attachments (may be NULL) */
  void *s3;      /* erpq_s3 * when the storage is S3 */
  char storage_off[512];
  /* Sends in flight, by job context (for cancellation). */
  pthread_mutex_t reg_mu;
  struct nt_reg_slot *reg;
  size_t reg_cap, reg_n;
  atomic_int stopping;
};

/* ---- Sends (erpq_notify_send.c) ----------------------------------------------------------- */

nt_send *nt_send_new(nt_ctx *nc, erpq_jobctx *job, nt_channel ch);
void nt_send_free(nt_send *s);
/* Fills queue, job id, owner, final_attempt, the dedup key (key, or
 * "<prefix>:<queue>:<jobId>" when key is NULL) and its hash. */
void nt_send_identity(nt_send *s, const char *dedup_key);
/* Registers s for cancellation and sets the job's cancel callback; hands
 * it to the ledger. The handler returns ERPQ_JOB_ASYNC afterwards. */
void nt_send_start(nt_send *s);
/* Moves s to stage st (under the registry lock); returns 1 if the job was
 * cancelled meanwhile. */
int nt_send_stage(nt_send *s, nt_stage st);
/* Unregisters s, ends its job (rc, result taken over, err) and frees s. */
void nt_send_finish(nt_send *s, int rc, json_t *result, const char *err);
/* Ends the job with erpq_job_delay(ms + jitter) and frees s. */
void nt_send_delay(nt_send *s, int64_t ms, const char *why);
void nt_registry_free(nt_ctx *nc);

/* ---- Records (erpq_notify_record.c) ---------------------------------------------------------- */

/* The MongoDB notifications document for s in its final state (status
 * "sent" or "failed"), canonical extended JSON; version is the new
 * record_version (its _id: dedup_hash, or dedup_hash.vN for N > 1). */
json_t *nt_record_doc(const nt_send *s, const char *status, int version, int attempts,
                      int64_t now_ms);
/* An audit event's data (no address): event type and the send's facts. */
json_t *nt_audit_data(const nt_send *s, const char *event, int attempts);
/* The job's result for a send that went (or had gone) out. */
json_t *nt_result(const nt_send *s, const char *status, int attempts);
/* A canonical extended JSON date {"$date":{"$numberLong":"ms"}}. */
json_t *nt_json_date(int64_t ms);

/* ---- Handlers ---------------------------------------------------------------------------- */

int nt_h_send_email(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen);
int nt_h_send_sms(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err, size_t errlen);
int nt_h_fee_reminders(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                       size_t errlen);

/* Shared checks of the send handlers (erpq_notify_send.c): schoolId,
 * template name, locale, dedupKey. 0 or -EINVAL (discard). */
int nt_common_fields(const json_t *data, int64_t *school, const char **tmpl, const char **locale,
                     const char **dedup, char *err, size_t errlen);
/* When the channel's breaker is open: the ms to delay a new send by. */
int64_t nt_breaker_wait(nt_ctx *nc, nt_channel ch);

/* ---- Helpers (erpq_notify_util.c) ------------------------------------------------------------ */

/* Money in minor units as text for templates: "Rs 12,34,567.50" (INR:
 * Indian digit grouping), "USD 1,234.50", "JPY 1,235". out[64]. */
void nt_money_text(int64_t minor, const char *currency, char out[64]);
/* The unsubscribe token of (school, student, channel): base64url of the
 * first 16 bytes of HMAC-SHA256(secret, "v1:<school>:<student>:<channel>"),
 * 22 characters. */
int nt_unsub_token(const char *secret, int64_t school, int64_t student, const char *channel,
                   char out[32]);
/* Verifies a token in constant time: 1 valid, 0 not. For the HTTP API. */
int nt_unsub_verify(const char *secret, int64_t school, int64_t student, const char *channel,
                    const char *token);
/* SHA-256 hex of len bytes of s into out[65]. */
void nt_sha256_hex(const void *s, size_t len, char out[65]);
/* erpq_redact() into out, for database and provider texts. */
void nt_redact(const char *in, char *out, size_t outlen);

#endif
