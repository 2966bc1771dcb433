/*
 * erpq_storage_link.h - signed, expiring download links for files kept in
 * a local directory, and the check the HTTP API runs before serving one.
 *
 * A link looks like
 *   <base>/v1/files/<key>?exp=<unix seconds>&name=<file name>&sig=<hex>
 * where key keeps its '/' and every component is percent-encoded by AWS's
 * URI rules. sig is the hex HMAC-SHA256, under a secret shared by the
 * worker (which signs) and the API (which verifies), of
 *   "erpq-file-link-v1\n" key "\n" exp "\n" name
 * with key, exp and name exactly as they arrive (decoded), so changing any
 * of them, or moving the link to another key, breaks the signature. key and
 * exp cannot hold a newline, and name comes last, so the string is
 * unambiguous.
 *
 * Verification, in order: the key must be a safe relative path
 * (erpq_storage_key_check), exp a plain decimal number, the signature
 * well-formed and equal (constant-time compare) to the one computed here,
 * and only then the expiry is looked at: an expired but genuine link is
 * -EKEYEXPIRED, distinct from a forged or tampered one (-EACCES), so the
 * API can answer "this link has expired, ask for a new one" (410) without
 * telling a forger anything.
 *
 * Lifetimes: 15 minutes unless asked otherwise, never more than 7 days,
 * at least 1 second (ERPQ_LINK_TTL_*).
 *
 * The signer struct holds a copy of the secret (at least 32 bytes) and the
 * base URL; it is immutable after erpq_link_signer_init(), so any number
 * of threads may sign and verify with it at once. erpq_link_signer_clear()
 * wipes the secret.
 */
#ifndef ERPQ_STORAGE_LINK_H
#define ERPQ_STORAGE_LINK_H

#include <stddef.h>
#include <stdint.h>

#define ERPQ_LINK_SECRET_MIN 32   /* Bytes. */
#define ERPQ_LINK_SECRET_MAX 256  /* Bytes. */
#define ERPQ_LINK_TTL_DEFAULT 900 /* Seconds (15 minutes). */
#define ERPQ_LINK_TTL_MAX 604800  /* Seconds (7 days). */
#define ERPQ_LINK_PATH "/v1/files/"

typedef struct erpq_link_signer {
  unsigned char secret[ERPQ_LINK_SECRET_MAX];
  size_t secret_len;
  char base_url[256]; /* http(s)://host[:port][/prefix], no trailing '/'. */
} erpq_link_signer;

/* Copies the secret (32..256 bytes) and the base URL (http or https,
 * trailing '/' dropped). Returns 0 or -EINVAL with a sentence in err. */
int erpq_link_signer_init(erpq_link_signer *s, const void *secret, size_t secret_len,
                          const char *base_url, char *err, size_t errlen);
void erpq_link_signer_clear(erpq_link_signer *s);

/* A storage key is safe when it is 1..1024 bytes of relative path: no
 * leading '/', no backslash, no control character (NUL included, since
 * len is checked against strlen), no empty, "." or ".." segment and no
 * segment starting with '.' (temporary files use those). Returns 0 or
 * -EINVAL with the reason in err. */
int erpq_storage_key_check(const char *key, size_t len, char *err, size_t errlen);

/* The link for key, valid until now + ttl_s (ttl_s <= 0: the default;
 * clamped to 1 s..7 days). file_name may be NULL or "" (no name=...
 * value). *url is malloc'ed; the caller frees it. */
int erpq_link_sign(const erpq_link_signer *s, const char *key, const char *file_name, int64_t ttl_s,
                   int64_t now, char **url, char *err, size_t errlen);

/* The hex signature of (key, exp, name) into out. For tests and for
 * callers that build the URL themselves. */
void erpq_link_signature(const erpq_link_signer *s, const char *key, const char *exp,
                         const char *name, char out[65]);

/* Checks a link's decoded parts: key (the path after /v1/files/), and the
 * exp, name (NULL counts as "") and sig query values. Returns 0 (serve
 * it), -EINVAL (malformed, unsafe key), -EACCES (bad signature) or
 * -EKEYEXPIRED (genuine but expired), with a sentence in err that never
 * echoes the secret. */
int erpq_link_verify(const erpq_link_signer *s, const char *key, const char *exp, const char *name,
                     const char *sig, int64_t now, char *err, size_t errlen);

#endif
