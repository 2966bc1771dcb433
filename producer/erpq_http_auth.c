#include "erpq_http_auth.h"

#include <errno.h>
#include <jwt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "erpq_buf.h"
#include "erpq_err.h"

/* The whole file (malloc'ed, NUL-terminated, owned by the caller), or NULL. */
static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *s = erpq_buf_read_all(f, len);
  fclose(f);
  return (unsigned char *)s;
}

int erpq_auth_init(erpq_auth *a, const char *rs256_key_file, int leeway_s, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  a->leeway_s = leeway_s;
  const char *sf = getenv("ERPQ_JWT_SECRET_FILE");
  const char *sv = getenv("ERPQ_JWT_SECRET");
  if (sf && *sf) {
    a->hs_secret = read_file(sf, &a->hs_len);
    if (!a->hs_secret)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "cannot read ERPQ_JWT_SECRET_FILE %s: %s", sf, strerror(errno));
    /* A trailing newline from an editor or `echo` is not part of the secret. */
    while (a->hs_len && (a->hs_secret[a->hs_len - 1] == '\n' || a->hs_secret[a->hs_len - 1] == '\r'))
      a->hs_secret[--a->hs_len] = '\0';
  } else if (sv && *sv) {
    a->hs_len = strlen(sv);
    a->hs_secret = (unsigned char *)strdup(sv);
  }
  if (a->hs_secret && a->hs_len < 32) {
    erpq_auth_free(a);
    return erpq_fail(err, errlen, ERPQ_E_ARG, "the HS256 secret must be at least 32 bytes");
  }
  if (rs256_key_file && *rs256_key_file) {
    a->rs_pub = read_file(rs256_key_file, &a->rs_len);
    if (!a->rs_pub) {
      erpq_auth_free(a);
      return erpq_fail(err, errlen, ERPQ_E_ARG, "cannot read the RS256 public key %s: %s", rs256_key_file,
                       strerror(errno));
    }
  }
  if (!a->hs_secret && !a->rs_pub)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "no JWT key: set ERPQ_JWT_SECRET_FILE (or ERPQ_JWT_SECRET) and/or --jwt-rs256-key");
  return 0;
}

void erpq_auth_free(erpq_auth *a) {
  free(a->hs_secret);
  free(a->rs_pub);
  memset(a, 0, sizeof *a);
}

static int b64url_val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Decodes base64url (no padding) of s[0..n) into a malloc'ed NUL-ended buffer. */
static char *b64url_decode(const char *s, size_t n) {
  char *out = malloc(n * 3 / 4 + 4);
  if (!out) return NULL;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xFF);
    }
  }
  out[o] = '\0';
  return out;
}

static int fail(char *err, size_t errlen, const char *msg) {
  snprintf(err, errlen, "%s", msg);
  return -1;
}

/* Full verification; *exp and *nbf (0 = none) get the token's times. */
static int verify(const erpq_auth *a, const char *authz, long long now_s, erpq_principal *p,
                  long long *exp_out, long long *nbf_out, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  *exp_out = 0, *nbf_out = 0;
  if (!authz || !*authz) return fail(err, errlen, "missing bearer token");
  if (strncasecmp(authz, "Bearer ", 7) != 0) return fail(err, errlen, "the Authorization header must be 'Bearer <token>'");
  const char *tok = authz + 7;
  while (*tok == ' ') tok++;
  size_t tlen = strlen(tok);
  if (tlen == 0 || tlen > 8192) return fail(err, errlen, "malformed token");
  const char *dot1 = strchr(tok, '.');
  const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
  if (!dot1 || !dot2 || strchr(dot2 + 1, '.')) return fail(err, errlen, "malformed token");

  /* The header, read before libjwt: only configured algorithms pass. */
  char *hdr = b64url_decode(tok, (size_t)(dot1 - tok));
  json_t *h = hdr ? json_loads(hdr, 0, NULL) : NULL;
  free(hdr);
  if (!json_is_object(h)) {
    json_decref(h);
    return fail(err, errlen, "malformed token: not a JWT (its header is not base64url-encoded JSON)");
  }
  const char *alg = json_string_value(json_object_get(h, "alg"));
  const unsigned char *key = NULL;
  size_t keylen = 0;
  jwt_alg_t want = JWT_ALG_INVAL;
  if (alg && !strcmp(alg, "HS256") && a->hs_secret) {
    key = a->hs_secret, keylen = a->hs_len, want = JWT_ALG_HS256;
  } else if (alg && !strcmp(alg, "RS256") && a->rs_pub) {
    key = a->rs_pub, keylen = a->rs_len, want = JWT_ALG_RS256;
  }
  json_decref(h);
  if (!key) return fail(err, errlen, "token algorithm not accepted");
  if (dot2[1] == '\0') return fail(err, errlen, "token is not signed");

  jwt_t *jwt = NULL;
  if (jwt_decode(&jwt, tok, key, (int)keylen) != 0 || !jwt) return fail(err, errlen, "bad token signature");
  if (jwt_get_alg(jwt) != want) {
    jwt_free(jwt);
    return fail(err, errlen, "token algorithm not accepted");
  }
  char *grants = jwt_get_grants_json(jwt, NULL);
  jwt_free(jwt);
  json_t *c = grants ? json_loads(grants, 0, NULL) : NULL;
  free(grants);
  int rc = -1;
  const json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
  const json_t *sub = json_object_get(c, "sub"), *role = json_object_get(c, "role");
  const json_t *school = json_object_get(c, "school_id");
  if (!json_is_object(c)) {
    fail(err, errlen, "malformed token claims");
  } else if (!json_is_number(exp)) {
    fail(err, errlen, "token has no exp claim");
  } else if ((double)now_s > json_number_value(exp) + a->leeway_s) {
    fail(err, errlen, "token expired");
  } else if (nbf && (!json_is_number(nbf) || (double)now_s + a->leeway_s < json_number_value(nbf))) {
    fail(err, errlen, "token not yet valid");
  } else if (!json_is_string(sub) || !json_string_length(sub) || json_string_length(sub) >= sizeof p->sub) {
    fail(err, errlen, "token has no valid sub claim");
  } else if (!json_is_string(role) || !json_string_length(role) || json_string_length(role) >= sizeof p->role) {
    fail(err, errlen, "token has no valid role claim");
  } else {
    rc = 0;
    *exp_out = (long long)json_number_value(exp);
    *nbf_out = nbf ? (long long)json_number_value(nbf) : 0;
    snprintf(p->sub, sizeof p->sub, "%s", json_string_value(sub));
    snprintf(p->role, sizeof p->role, "%s", json_string_value(role));
    if (json_is_integer(school)) {
      p->has_school = 1;
      snprintf(p->school, sizeof p->school, "%" JSON_INTEGER_FORMAT, json_integer_value(school));
    } else if (json_is_string(school)) {
      const char *s = json_string_value(school);
      size_t n = strlen(s);
      int ok = n > 0 && n < sizeof p->school;
      for (size_t i = 0; ok && i < n; i++) ok = s[i] >= '0' && s[i] <= '9';
      if (ok) {
        p->has_school = 1;
        snprintf(p->school, sizeof p->school, "%s", s);
      } else {
        rc = fail(err, errlen, "token has an invalid school_id claim");
      }
    } else if (school && !json_is_null(school)) {
      rc = fail(err, errlen, "token has an invalid school_id claim");
    }
  }
  json_decref(c);
  return rc;
}

int erpq_auth_verify(const erpq_auth *a, const char *authz, long long now_s, erpq_principal *p,
                     char *err, size_t errlen) {
  long long exp, nbf;
  return verify(a, authz, now_s, p, &exp, &nbf, err, errlen);
}

/* ---- Token cache -------------------------------------------------------------
 * Each thread keeps the last TOKEN_CACHE tokens that passed full
 * verification, in a direct-mapped table indexed by a hash of the whole
 * token. A hit compares the whole string (signature included) and re-checks
 * only exp and nbf against the clock, so the cache cannot make a bad or
 * expired token good. The table is freed when its thread ends. */
#define TOKEN_CACHE 64

typedef struct tok_entry {
  char *token;
  erpq_principal p;
  long long exp, nbf; /* nbf 0 = none. */
} tok_entry;

static __thread tok_entry tl_tokens[TOKEN_CACHE];
static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void tok_free(void *arg) {
  tok_entry *t = arg;
  for (int i = 0; i < TOKEN_CACHE; i++) {
    free(t[i].token);
    t[i].token = NULL;
  }
}

static void tok_init(void) { pthread_key_create(&tok_key, tok_free); }

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

int erpq_auth_verify_cached(const erpq_auth *a, const char *authz, long long now_s, erpq_principal *p,
                            char *err, size_t errlen) {
  const char *tok = authz && !strncasecmp(authz, "Bearer ", 7) ? authz + 7 : NULL;
  while (tok && *tok == ' ') tok++;
  tok_entry *e = NULL;
  if (tok && strlen(tok) <= 8192) {
    e = &tl_tokens[fnv1a(tok) % TOKEN_CACHE];
    if (e->token && !strcmp(e->token, tok)) {
      if (now_s > e->exp + a->leeway_s) return fail(err, errlen, "token expired");
      if (e->nbf && now_s + a->leeway_s < e->nbf) return fail(err, errlen, "token not yet valid");
      *p = e->p;
      return 0;
    }
  }
  long long exp, nbf;
  if (verify(a, authz, now_s, p, &exp, &nbf, err, errlen)) return -1;
  if (e) {
    pthread_once(&tok_once, tok_init);
    if (!pthread_getspecific(tok_key)) pthread_setspecific(tok_key, tl_tokens);
    free(e->token);
    e->token = strdup(tok);
    e->p = *p;
    e->exp = exp;
    e->nbf = nbf;
  }
  return 0;
}

/* ---- Policy --------------------------------------------------------------- */

int erpq_policy_load(erpq_policy *pol, const char *path, char *err, size_t errlen) {
  json_error_t je;
  pol->doc = json_load_file(path, 0, &je);
  if (!pol->doc)
    return erpq_fail(err, errlen, ERPQ_E_JSON, "roles file %s: %s (line %d)", path, je.text, je.line);
  const json_t *q = json_object_get(pol->doc, "queues"), *r = json_object_get(pol->doc, "roles");
  if (!json_is_object(q) || !json_is_object(r)) {
    erpq_policy_free(pol);
    return erpq_fail(err, errlen, ERPQ_E_ARG, "roles file %s: needs \"queues\" and \"roles\" objects", path);
  }
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)r, k, v) {
    size_t i;
    const json_t *g;
    if (!json_is_array(v)) {
      erpq_policy_free(pol);
      return erpq_fail(err, errlen, ERPQ_E_ARG, "roles file %s: role %s must be a list of grants", path, k);
    }
    json_array_foreach(v, i, g) {
      if (!json_is_string(json_object_get(g, "action")) || !json_is_string(json_object_get(g, "queue"))) {
        erpq_policy_free(pol);
        return erpq_fail(err, errlen, ERPQ_E_ARG, "roles file %s: grant %zu of role %s needs action and queue",
                         path, i, k);
      }
    }
  }
  return 0;
}

void erpq_policy_free(erpq_policy *pol) {
  json_decref(pol->doc);
  pol->doc = NULL;
}

static int match(const json_t *pat, const char *v) {
  if (!pat) return 1; /* An absent "job" matches every job. */
  const char *s = json_string_value(pat);
  return s && (!strcmp(s, "*") || (v && !strcmp(s, v)));
}

int erpq_policy_allows(const erpq_policy *pol, const char *role, const char *action,
                       const char *queue, const char *job) {
  const json_t *grants = json_object_get(json_object_get(pol->doc, "roles"), role);
  size_t i;
  const json_t *g;
  json_array_foreach(grants, i, g) {
    if (match(json_object_get(g, "action"), action) && match(json_object_get(g, "queue"), queue) &&
        (!job || match(json_object_get(g, "job"), job)))
      return 1;
  }
  return 0;
}
