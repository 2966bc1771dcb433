/*
 * erpq_notifications.h - the notifications family: e-mail and SMS from
 * templates, the fee-reminder fan-out, provider limits shared by the
 * fleet, no double sends, and records in MongoDB through the outbox.
 *
 * Jobs (schemas/<job>.json; default queues email, sms, notifications):
 *   send-email     {schoolId, to, cc?, template, locale?, vars, attachments?,
 *                   dedupKey?, unsubscribe?}    erpq_notify_email.c
 *   send-sms       {schoolId, to, template, locale?, vars, dedupKey?}
 *                                               erpq_notify_sms_job.c
 *   fee-reminders  {schoolId, asOf, classId?, minOverdueDays?, channels,
 *                   template?, locale?}         erpq_notify_fanout.c
 *
 * A send, step by step (erpq_notify_internal.h has the structures):
 *   1. handler (pool thread, `threads` = 4): checks the data, renders the
 *      template (lib/mustache: strict, every missing variable named; HTML
 *      escaping only in html bodies), builds the MIME message (Message-ID
 *      from the dedup key) or the SMS text (GSM-7/UCS-2, segments), and
 *      returns ERPQ_JOB_ASYNC. Input that can never work fails at once and
 *      for good (erpq_job_discard).
 *   2. ledger (a claims thread and an outcomes thread, each with a MySQL
 *      connection of its own, batches; erpq_notify_ledger.c): claims the
 *      send's row in `notifications` (keyed by SHA-256 of the dedup key:
 *      data.dedupKey, else "<prefix>:<queue>:<jobId>"): 'pending', owned by this
 *      attempt, with a lease. A row already 'sent' ends the job at once
 *      with status "already-sent": nothing is sent twice by a retry, a
 *      re-run or a second job with the same dedupKey.
 *   3. dispatcher (one thread per channel): asks the provider gate in
 *      Redis for the batch (rate per second and per day, circuit breaker;
 *      erpq_notify_limits.h) and hands what is granted to the transport
 *      (erpq_smtp / erpq_sms on the curl runner: many messages in flight
 *      on a few connections; erpq_notify_pipe.c). A closed gate delays
 *      jobs with erpq_job_delay() (no attempt used) instead of failing
 *      them.
 *   4. the transport's answer comes back to the dispatcher (breaker
 *      report) and then to the ledger, which marks the row 'sent' (or
 *      'failed', or counts a retry) and writes the notifications record
 *      and the audit event into the MySQL outbox in the same transaction,
 *      then finishes the job (erpq_job_finish). 429 -> delayed by its
 *      Retry-After, no attempt used; 5xx / connection / SMTP 4xx -> failed
 *      for bull to retry (attempts, backoff); other 4xx and SMTP 5xx ->
 *      failed for good, the record says why.
 *   The one window for a double send: the provider accepted the message
 *   and the process died before the ledger's COMMIT (README.md).
 *
 * Cancellation (timeout, lost lock, shutdown): the job's on-cancel hook
 * aborts the transfer (erpq_smtp_cancel / erpq_sms_cancel) or wakes the
 * stage holding the send, which ends the job. quiesce() stops the curl
 * runner (every transfer calls back), then the dispatchers, the ledger
 * (which records what the providers answered) and the relay: when it
 * returns, the family holds no job.
 *
 * The outbox relay (erpq_notify_relay.c, with ERPQ_MONGO_URL): one active
 * across the fleet (MySQL GET_LOCK on a connection of its own), drains
 * the outbox to MongoDB in unordered insert_many batches; a duplicate key
 * means "already recorded". Without ERPQ_MONGO_URL the records stay in
 * MySQL (notifications rows, outbox rows).
 *
 * Settings: the table in erpq_notify_family.c (ERPQ_MYSQL_URL, ERPQ_SMTP_*,
 * ERPQ_MAIL_FROM, ERPQ_SMS_*, rates, breaker, ERPQ_MONGO_URL, templates
 * directory, unsubscribe links, report storage); README.md explains them.
 * The transports read theirs through erpq_args_lookup.
 *
 * Privacy: no log line, failedReason, job log or record carries an e-mail
 * address or phone number in clear (records hold erpq_email_mask /
 * erpq_e164_mask forms; provider and database texts pass erpq_redact);
 * job data is never logged.
 *
 * Ownership: the descriptor is static; init's context (nt_ctx) is freed
 * by shutdown.
 */
#ifndef ERPQ_NOTIFICATIONS_H
#define ERPQ_NOTIFICATIONS_H

#include "erpq_family.h"

extern const erpq_family erpq_family_notifications;

#endif
