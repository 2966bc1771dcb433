/*
 * erpq_notify_sql.h - prepared SELECTs whose columns are text, for the
 * notifications family.
 *
 * lib/mysql's helpers return integer rows only; the family also reads
 * names, addresses, phone numbers, statuses and dates. nt_stmt is a
 * prepared statement (parameters bound as erpq_param, SQL text never built
 * from data) whose every result column is fetched as text: each cell is a
 * NUL-terminated string, or NULL for SQL NULL. Dates and numbers come back
 * as MariaDB prints them ("2026-04-10", "125000").
 *
 * Ownership: nt_rows owns every cell (one allocation per cell, freed by
 * nt_rows_free); the statement belongs to its MYSQL connection and must be
 * closed before the connection is. Not thread-safe: one statement, one
 * thread at a time, like the connection under it.
 *
 * Errors are -(MySQL error number) (or -ENOMEM) with the server's sentence
 * in err; callers that pass such a sentence on to a job's failedReason or a
 * log line run it through erpq_redact() first (a server error can quote
 * data).
 */
#ifndef ERPQ_NOTIFY_SQL_H
#define ERPQ_NOTIFY_SQL_H

#include <mysql.h>
#include <stddef.h>

#include "erpq_mysql.h"

typedef struct nt_rows {
  size_t nrows, ncols;
  char **cells; /* nrows * ncols; NULL = SQL NULL */
} nt_rows;

typedef struct nt_stmt nt_stmt;

int nt_stmt_prepare(MYSQL *m, const char *sql, nt_stmt **out, char *err, size_t errlen);
/* Executes with np parameters; rows (may be NULL for a statement without
 * a result) receives every row, all columns as text. */
int nt_stmt_rows(nt_stmt *s, const erpq_param *p, int np, nt_rows *rows, char *err, size_t errlen);
void nt_stmt_close(nt_stmt *s);

/* Prepare, run, close. */
int nt_sql_rows(MYSQL *m, const char *sql, const erpq_param *p, int np, nt_rows *rows, char *err,
                size_t errlen);

/* The cell at row r, column c (NULL for SQL NULL). */
const char *nt_cell(const nt_rows *rows, size_t r, size_t c);
void nt_rows_free(nt_rows *rows);

#endif
