/*
 * erpq_mysql_stream.h - reading a big result row by row (mysql_use_result),
 * so that memory stays flat however many rows there are.
 *
 * A report reads up to millions of rows. mysql_store_result() (and the
 * pool's helpers in erpq_mysql.h) would hold them all in memory; here the
 * result is unbuffered: each erpq_mysql_stream_next() reads one row from
 * the socket, and the client keeps one row (plus libmariadb's network
 * buffer) at a time.
 *
 * Parameters. The text protocol (mysql_real_query + mysql_use_result) has
 * no placeholders, and SQL text is never built from data. So values go in
 * as user variables set by ONE prepared statement,
 *     SET @erpq_1 = ?, @erpq_2 = ?, ...
 * whose text depends only on how many there are, and the query's fixed
 * text refers to @erpq_1 .. @erpq_N. MariaDB treats a user variable that
 * the statement does not assign as a constant, so ranges and index lookups
 * on them are planned exactly as literals are (check with EXPLAIN).
 * String variables take the connection's collation: use
 * erpq_mysql_stream_session() (utf8mb4_unicode_ci, the schema's) before
 * comparing them with columns.
 *
 * The connection. An unbuffered result occupies its connection until it is
 * read to the end: no other statement may run on it meanwhile ("Commands
 * out of sync"), so a stream wants a connection of its own (not one from
 * a small shared pool that a long report would starve). The server, for
 * its part, keeps the query open while the client reads; if the client
 * stops reading (its consumer, e.g. an upload, stalls), the server waits
 * at most net_write_timeout seconds for its socket buffer to drain and then
 * aborts the query and closes the connection. erpq_mysql_stream_session()
 * sets that bound for the session, and the URL's read_timeout bounds the
 * other direction (a server that stops sending). So a stalled consumer can
 * hold a result open for at most net_write_timeout seconds.
 *
 * States: OPEN (rows coming) -> END (next() answered 0; the result is
 * done and the connection is usable again) or FAILED (next() answered an
 * error: lost connection, KILL from another session, timeout). close()
 * frees the stream in every state. Closing an OPEN stream (the consumer
 * gave up: cancelled, upload failed) does NOT read the remaining rows,
 * which libmariadb's mysql_free_result() would do (a million rows to
 * throw away): it cuts the connection's socket first (reads end at once,
 * and the close resets the connection, SO_LINGER 0), so the server's next
 * write fails and it stops the query; the connection is dead.
 * close() says which it was; the caller closes a dead connection.
 *
 * Errors: 0 or a negative code; server and client errors as -(MySQL error
 * number) (e.g. -2013 lost connection, -1927 connection killed, -1317
 * query interrupted), with one sentence in err. Messages never carry
 * values (rows are personal data).
 *
 * Ownership and threads: a stream belongs to the thread that opened it and
 * borrows its MYSQL handle until close(). Row pointers are valid until the
 * next call to next() or close().
 */
#ifndef ERPQ_MYSQL_STREAM_H
#define ERPQ_MYSQL_STREAM_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_mysql.h"

/* At most this many parameters (@erpq_1 .. @erpq_16). */
#define ERPQ_STREAM_MAX_PARAMS 16

/* Prepares m for streaming: collation utf8mb4_unicode_ci for string
 * variables, net_write_timeout and net_read_timeout (seconds, 1..86400) as
 * given, and, when snapshot is non-zero, START TRANSACTION WITH CONSISTENT
 * SNAPSHOT, READ ONLY, so that a count, the rows and their sums read later
 * all see the same data. Returns 0 or a negative code. */
int erpq_mysql_stream_session(MYSQL *m, unsigned net_write_timeout_s, int snapshot, char *err,
                              size_t errlen);

/* Sets @erpq_1..@erpq_np from p (see above; np 0..ERPQ_STREAM_MAX_PARAMS).
 * Separate from open() for callers that run several statements on the
 * same values (a COUNT first, then the rows). */
int erpq_mysql_set_vars(MYSQL *m, const erpq_param *p, int np, char *err, size_t errlen);

typedef struct erpq_mysql_stream erpq_mysql_stream;

/* One row: n columns, v[i] the text of column i (NUL-terminated, NULL for
 * SQL NULL), len[i] its length in bytes. */
typedef struct erpq_mysql_row {
  unsigned n;
  char **v;
  unsigned long *len;
} erpq_mysql_row;

/* Sets the variables (np may be 0: none are set and the query may use
 * variables set before) and runs sql with an unbuffered result. sql must
 * return rows (a SELECT). */
int erpq_mysql_stream_open(MYSQL *m, const char *sql, const erpq_param *p, int np,
                           erpq_mysql_stream **out, char *err, size_t errlen);
/* The number of columns. */
unsigned erpq_mysql_stream_ncols(const erpq_mysql_stream *s);
/* Reads the next row: 1 (row set), 0 (end of result) or a negative code. */
int erpq_mysql_stream_next(erpq_mysql_stream *s, erpq_mysql_row *row, char *err, size_t errlen);
/* Rows read so far. */
uint64_t erpq_mysql_stream_rows(const erpq_mysql_stream *s);
/* Reads ahead on a thread of the stream's own, so that the server's rows
 * arrive while the caller is busy with the previous ones (a report writer
 * formatting XLSX, an upload): up to batches x rows_per_batch rows are
 * copied ahead (2..64 batches of 1..65536 rows), then the thread waits for
 * the caller; memory stays bounded, and a caller that stops taking rows
 * stops the reading too (net_write_timeout still bounds the server). Call
 * it right after open(), from the thread that opened the stream; until
 * close() that thread must not use the connection. Rows are the same as
 * without it (pointers valid until the next next()/close()), and an error
 * of the reader comes from next() after the rows read before it. */
int erpq_mysql_stream_prefetch(erpq_mysql_stream *s, unsigned rows_per_batch, unsigned batches,
                               char *err, size_t errlen);
/* Frees s. Returns 1 when the connection is usable again (the result was
 * read to its end), 0 when it was cut (s was still open or failed): then
 * the caller must mysql_close() it. NULL returns 1. */
int erpq_mysql_stream_close(erpq_mysql_stream *s);

/* Parses a decimal integer column (optional '-', digits only) into *out:
 * 0, or -EINVAL for NULL, empty, other characters or overflow. */
int erpq_mysql_parse_i64(const char *s, unsigned long len, int64_t *out);

#endif
