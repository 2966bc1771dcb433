#include "erpq_token.h"

#include <errno.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"

int erpq_token_make(const unsigned char *secret, size_t secret_len, const char *sub,
                    const char *role, const char *school, int64_t ttl_s, int64_t now_s,
                    char **out, char *err, size_t errlen) {
  *out = NULL;
  if (!role || !*role) return erpq_fail(err, errlen, ERPQ_E_ARG, "a role is required");
  if (school && (!*school || strspn(school, "0123456789") != strlen(school)))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "the school must be a number, got '%s'", school);
  jwt_t *j = NULL;
  if (jwt_new(&j) || !j) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = jwt_add_grant(j, "sub", sub && *sub ? sub : "dev") ||
           jwt_add_grant(j, "role", role) ||
           jwt_add_grant_int(j, "iat", (long)now_s) ||
           jwt_add_grant_int(j, "exp", (long)(now_s + ttl_s)) ||
           (school && jwt_add_grant_int(j, "school_id", atol(school))) ||
           jwt_set_alg(j, JWT_ALG_HS256, secret, (int)secret_len);
  char *tok = rc ? NULL : jwt_encode_str(j);
  jwt_free(j);
  if (!tok) return erpq_fail(err, errlen, ERPQ_E_ARG, "cannot sign the token");
  *out = tok; /* libjwt 1.10 hands out malloc'ed strings (free()). */
  return 0;
}
