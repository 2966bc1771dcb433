/*
 * erpq_err.h - error codes shared by every erpq module.
 *
 * Functions in erpq return an int: 0 on success, or a negative error code.
 * System failures are returned as -errno (for example -ENOMEM, -EINVAL,
 * -ENOENT), so that a caller can compare against the usual constants.  Errors
 * that belong to the Bull protocol have their own codes below, far outside
 * the errno range.  Functions that can fail for a reason worth printing also
 * take a caller-owned buffer `char *err, size_t errlen` and write one readable
 * sentence into it; the buffer is always NUL-terminated when errlen > 0.
 */
#ifndef ERPQ_ERR_H
#define ERPQ_ERR_H

#include <errno.h>
#include <stddef.h>

/* Bull script return codes, mapped to distinct errors. */
#define ERPQ_E_JOB_MISSING   (-10001) /* The job hash does not exist (-1). */
#define ERPQ_E_LOCK_MISSING  (-10002) /* The job's lock is gone (-2). */
#define ERPQ_E_NOT_ACTIVE    (-10003) /* The job is not in the active list (-3). */
#define ERPQ_E_LOCK_MISMATCH (-10006) /* Another worker holds the lock (-6). */
/* Other erpq errors. */
#define ERPQ_E_PROTOCOL      (-10100) /* Redis answered something unexpected. */
#define ERPQ_E_REDIS         (-10101) /* Redis answered with an error reply. */
#define ERPQ_E_JSON          (-10102) /* A JSON document could not be parsed. */
#define ERPQ_E_ARG           (-10103) /* A caller-supplied argument is invalid. */
#define ERPQ_E_TIMEOUT       (-10104) /* A wait ran out of time. */
#define ERPQ_E_CONN          (-10105) /* The connection to Redis failed. */

/* Returns a static, human-readable description of an erpq or errno code. */
const char *erpq_strerror(int code);

/* Writes a formatted message into err (if err is non-NULL and errlen > 0)
 * and returns code, so that callers can write `return erpq_fail(...)`. */
int erpq_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
