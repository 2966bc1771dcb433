/*
 * erpq_token.h - development tokens for the HTTP API (`erpq-producer token`).
 *
 * Makes an HS256 JWT with the claims the API reads (erpq_http_auth.h): sub,
 * role, optional school_id, iat and exp, signed with libjwt using the same
 * secret the API verifies with (ERPQ_JWT_SECRET_FILE or ERPQ_JWT_SECRET, at
 * least 32 bytes). For local runs and scripts; a real deployment's backend
 * issues its own tokens.
 */
#ifndef ERPQ_TOKEN_H
#define ERPQ_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* *out (malloc'ed, the caller frees it) gets the token. school may be NULL.
 * Returns 0, or ERPQ_E_ARG / -ENOMEM with err. */
int erpq_token_make(const unsigned char *secret, size_t secret_len, const char *sub,
                    const char *role, const char *school, int64_t ttl_s, int64_t now_s,
                    char **out, char *err, size_t errlen);

#endif
