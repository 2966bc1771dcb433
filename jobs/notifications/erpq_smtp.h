/*
 * erpq_smtp.h - an asynchronous SMTP sender on the curl runner.
 *
 * What it does. erpq_smtp_send() takes a message that is already built
 * (RFC 5322 bytes with CRLF line ends: the MIME builder of this family
 * makes them), an envelope sender and envelope recipients, and hands them
 * to an SMTP server over a small pool of reused SMTP sessions. The result
 * comes back later, classified, through a callback on the runner thread
 * (see lib/curl/erpq_curl_async.h). Many sends may be in flight from any
 * number of threads; none blocks on the network.
 *
 * Configuration (read once by erpq_smtp_new() through the caller's
 * lookup callback, see erpq_transport_conf.h):
 *   ERPQ_SMTP_URL        smtp://[user:password@]host[:port][/ehlo-name]
 *                        [?starttls=required|try]. smtp:// uses STARTTLS
 *                        when the server offers it (CURLUSESSL_TRY);
 *                        ?starttls=required makes it mandatory
 *                        (CURLUSESSL_ALL: a server that does not offer it
 *                        fails every send); smtps:// is implicit TLS.
 *                        user and password are percent-decoded.
 *   ERPQ_SMTP_USER, ERPQ_SMTP_PASSWORD (or ERPQ_SMTP_PASSWORD_FILE)
 *                        credentials, when not in the URL (not both).
 *   ERPQ_SMTP_CONNECTIONS             sessions at most (default 4).
 *   ERPQ_SMTP_MESSAGES_PER_CONNECTION messages per session, then it is
 *                        closed with QUIT and replaced (default 100).
 *   ERPQ_SMTP_CONNECT_TIMEOUT_MS      TCP+TLS connect (default 10000).
 *   ERPQ_SMTP_TIMEOUT_MS whole send, from the moment the message gets a
 *                        session until the final reply (default 60000).
 *   ERPQ_SMTP_REPLY_TIMEOUT_MS        each server reply, including the
 *                        reply to QUIT (default 30000; whole seconds).
 *   ERPQ_SMTP_CA_FILE    CA bundle for the server's certificate (default:
 *                        the system's).
 * A bad setting fails erpq_smtp_new() with a sentence that names the
 * variable; it never repeats a password (nor a URL that holds one).
 *
 * Sessions and "at most N messages per connection". libcurl keeps
 * connections in a cache and picks one for each transfer itself, so with
 * one shared cache nobody can say which connection a message will use or
 * how many a connection has carried. The sender therefore has
 * ERPQ_SMTP_CONNECTIONS lanes. A lane is a CURLSH share that holds its
 * own connection cache (CURL_LOCK_DATA_CONNECT) and runs one message at a
 * time, so it holds at most one SMTP session, and every message of the
 * lane goes over that session while it lives. The lane counts the
 * messages of its current session: the socket callbacks
 * (CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION, which libcurl keeps
 * per connection) tell it when its session opens and closes, and
 * CURLINFO_NUM_CONNECTS tells whether a message opened a new one. When
 * the next message would be the N-th on the session, the lane sets
 * CURLOPT_FORBID_REUSE on it: libcurl sends QUIT after that message and
 * closes, and the lane's next message opens a fresh session. (Time-based
 * options such as CURLOPT_MAXLIFETIME_CONN cannot count messages, and
 * CURLINFO_ACTIVESOCKET numbers are reused by the kernel after a close.)
 * A session the server closed while idle is noticed by libcurl before
 * reuse and replaced; after a failed send libcurl closes the session
 * itself. The lanes are a group of the runner with ERPQ_SMTP_CONNECTIONS
 * slots; messages beyond that wait in the runner's queue, and the lane is
 * chosen in the group's start hook on the runner thread, which is the
 * only thread that ever touches a lane's share while messages flow. The
 * start hook also makes the message's easy handle, so a queued message
 * costs its own bytes (a copy of the message and envelope), not an easy
 * handle's several KiB: 10,000 queued mails of 300 bytes stay under 10 MB.
 * Closing a session with QUIT waits for the server's reply on the runner
 * thread (libcurl's SMTP QUIT is blocking), at most
 * ERPQ_SMTP_REPLY_TIMEOUT_MS.
 *
 * One message, all recipients: a message goes to all its recipients or
 * fails (a rejected recipient fails the send; libcurl's
 * CURLOPT_MAIL_RCPT_ALLOWFAILS is not used). Send one message per
 * recipient when each needs its own outcome.
 *
 * Outcomes (erpq_smtp_result):
 *   ACCEPTED   250 to the end of the data: the server took the message.
 *   TEMPORARY  any 4xx reply at any stage (421 included), a refused,
 *              reset or dropped connection, a timeout, a TLS failure, a
 *              cancelled send: retry later.
 *   PERMANENT  a 5xx reply for the sender, a recipient, the data or the
 *              authentication: do not retry this message as it is.
 * reply_code is the server's last reply code (0: none), enhanced its
 * RFC 3463 status ("5.1.1") when it gave one, stage the step that failed
 * (CONNECTION, GREETING, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, MESSAGE
 * for the reply to the data, CANCELLED), and server_wide says that the
 * failure is not about this message (connection, greeting, TLS,
 * authentication, 421): a handler should pause the whole run, not mark
 * the recipient. message is one sentence for logs: the server's text
 * passed through erpq_redact(), so it never holds an e-mail address.
 * A dropped connection after the data was sent (before the final reply)
 * is TEMPORARY although the server may have taken the message: SMTP cannot
 * tell, and a retry may deliver it twice.
 *
 * Threads and ownership.
 *   - erpq_smtp_new() borrows the runner, which must outlive the sender.
 *   - erpq_smtp_send() is thread-safe; it copies the sender, the
 *     recipients and the message, so the caller's buffers may go as soon
 *     as it returns. It fails (done is never called) with -EINVAL (an
 *     address holding CR, LF, '<', '>', blanks or NUL, no recipient),
 *     -ENOMEM or -ESHUTDOWN; otherwise done runs exactly once, on the
 *     runner thread, with a result that lives only during the call.
 *   - erpq_smtp_cancel() cancels one send (as erpq_curl_async_cancel()):
 *     a queued one never reaches the server; one in flight has its session
 *     shut down (socket shutdown) before libcurl takes the transfer apart,
 *     because libcurl 7.88's SMTP "done" step would otherwise send the
 *     end-of-data mark of a message cut short and have it delivered
 *     truncated. The server sees a dropped session and discards the
 *     message (unless it had already received the whole data and its end
 *     mark, in which case it may have taken it: the callback then says
 *     CANCELLED all the same).
 *   - erpq_smtp_free() needs every send to have completed (its callback
 *     returned, e.g. after erpq_curl_async_stop()), else -EBUSY and
 *     nothing is freed. It closes the idle sessions (QUIT) on the calling
 *     thread. The runner's group of lanes stays in the runner, unused,
 *     until the runner stops.
 */
#ifndef ERPQ_SMTP_H
#define ERPQ_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_curl_async.h"
#include "erpq_transport_conf.h"

typedef enum {
  ERPQ_SMTP_ACCEPTED,
  ERPQ_SMTP_TEMPORARY,
  ERPQ_SMTP_PERMANENT,
} erpq_smtp_outcome;

typedef struct erpq_smtp_result {
  erpq_smtp_outcome outcome;
  int reply_code;
  char enhanced[16];
  const char *stage; /* Static string. */
  int server_wide;
  int curl_code;
  uint64_t id; /* As returned by erpq_smtp_send(). */
  char message[256];
} erpq_smtp_result;

typedef void (*erpq_smtp_done_fn)(const erpq_smtp_result *r, void *ud);

typedef struct erpq_smtp erpq_smtp;

typedef struct erpq_smtp_stats {
  uint64_t sent, accepted, temporary, permanent;
  uint64_t sessions_opened; /* Sockets opened by the lanes. */
  int sessions_open;        /* Open now. */
  int sessions_max;         /* Most open at once. */
} erpq_smtp_stats;

int erpq_smtp_new(erpq_smtp **out, erpq_curl_async *runner, const erpq_conf_src *conf, char *err,
                  size_t errlen);

/* Sends msg (len bytes) from `from` ("" for the null sender) to rcpt[0..n).
 * *id (may be NULL) gets the send's id. */
int erpq_smtp_send(erpq_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                   const void *msg, size_t len, erpq_smtp_done_fn done, void *ud, uint64_t *id,
                   char *err, size_t errlen);

int erpq_smtp_cancel(erpq_smtp *s, uint64_t id);
void erpq_smtp_stats_get(erpq_smtp *s, erpq_smtp_stats *st);
int erpq_smtp_free(erpq_smtp *s);

const char *erpq_smtp_outcome_name(erpq_smtp_outcome o);

/* The classification itself, exposed for tests: from a libcurl result,
 * the last reply code and line the server sent (may be NULL) and
 * libcurl's error buffer (may be NULL). */
void erpq_smtp_classify(int curl_code, int reply_code, const char *reply_line,
                        const char *curl_error, erpq_smtp_result *r);

#endif
