#include "erpq_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *erpq_strerror(int code) {
  switch (code) {
  case 0: return "success";
  case ERPQ_E_JOB_MISSING: return "job does not exist";
  case ERPQ_E_LOCK_MISSING: return "missing lock for job";
  case ERPQ_E_NOT_ACTIVE: return "job is not in the active list";
  case ERPQ_E_LOCK_MISMATCH: return "lock mismatch: another worker owns the job";
  case ERPQ_E_PROTOCOL: return "unexpected reply from Redis";
  case ERPQ_E_REDIS: return "Redis returned an error";
  case ERPQ_E_JSON: return "invalid JSON";
  case ERPQ_E_ARG: return "invalid argument";
  case ERPQ_E_TIMEOUT: return "timed out";
  case ERPQ_E_CONN: return "connection to Redis failed";
  default:
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
  }
}

int erpq_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}
