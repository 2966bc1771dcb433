/*
 * erpq_http_auth.h - who is calling the HTTP API, and what they may do.
 *
 * Tokens: a bearer JWT verified with libjwt. Before libjwt sees a token we
 * read its header ourselves and accept only an algorithm we were configured
 * for: HS256 when a secret is set, RS256 when a public key is set. "none",
 * HS384, ES256..., and RS256 without a key are refused, so a token can
 * neither drop its signature nor trick us into using the RSA public key as
 * an HMAC secret. Then: exp is required and must be in the future, nbf (if
 * present) must not be, both with leeway_s seconds of clock skew; sub and
 * role must be non-empty strings; school_id, if present, an integer or a
 * string of digits.
 *
 * Policy: roles.json (see its $comment; found by the data-path rule,
 * erpq_datapath.h): per role a list of grants {action, queue, job} with "*"
 * wildcards, and the job names of queues other workers serve ("queues";
 * erpq_jobtypes.h turns it and the built-in families into the queue list). A role with no entry may do nothing. Loaded once, read-only
 * afterwards, shared by the server threads.
 */
#ifndef ERPQ_HTTP_AUTH_H
#define ERPQ_HTTP_AUTH_H

#include <jansson.h>
#include <stddef.h>

typedef struct erpq_auth {
  unsigned char *hs_secret; /* NULL when HS256 is not configured. */
  size_t hs_len;
  unsigned char *rs_pub;    /* PEM public key, NULL when RS256 is off. */
  size_t rs_len;
  int leeway_s;
} erpq_auth;

typedef struct erpq_principal {
  char sub[128];
  char role[64];
  int has_school;
  char school[32]; /* Decimal school id when has_school. */
} erpq_principal;

/* Reads the secret (ERPQ_JWT_SECRET_FILE, else ERPQ_JWT_SECRET) and the
 * optional RS256 key file. Returns 0 or ERPQ_E_ARG (nothing configured, an
 * unreadable file, a secret under 32 bytes). */
int erpq_auth_init(erpq_auth *a, const char *rs256_key_file, int leeway_s, char *err, size_t errlen);
void erpq_auth_free(erpq_auth *a);

/* Verifies "Bearer <jwt>" (the Authorization header value, may be NULL).
 * Returns 0 and fills *p, or -1 with a short reason in err (never the
 * token itself). */
int erpq_auth_verify(const erpq_auth *a, const char *authz, long long now_s, erpq_principal *p,
                     char *err, size_t errlen);

/* The same check, with a per-thread cache of the last 64 tokens that
 * passed it (compared as whole strings; exp and nbf are re-checked on every
 * hit). A backend sends one token thousands of times: this saves the HMAC
 * or RSA check and the JSON parsing on all but the first. */
int erpq_auth_verify_cached(const erpq_auth *a, const char *authz, long long now_s, erpq_principal *p,
                            char *err, size_t errlen);

typedef struct erpq_policy {
  json_t *doc;
} erpq_policy;

int erpq_policy_load(erpq_policy *pol, const char *path, char *err, size_t errlen);
void erpq_policy_free(erpq_policy *pol);
/* 1 if role may do action on queue (and job, NULL for actions on no job). */
int erpq_policy_allows(const erpq_policy *pol, const char *role, const char *action,
                       const char *queue, const char *job);

#endif
