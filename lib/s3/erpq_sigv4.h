/*
 * erpq_sigv4.h - AWS Signature Version 4 for S3, pure functions (no I/O).
 *
 * SigV4 proves to S3 that a request was made by the holder of a secret key,
 * without sending the key. Four steps, each a function here so that tests
 * can compare every intermediate string with the worked examples AWS
 * publishes:
 *
 *   1. canonical request: method, URI-encoded path, sorted and encoded
 *      query, lower-cased sorted headers with trimmed values, the list of
 *      signed header names, and the payload hash (hex SHA-256 of the body,
 *      or the literal UNSIGNED-PAYLOAD for presigned URLs);
 *   2. string to sign: "AWS4-HMAC-SHA256", the time (YYYYMMDDTHHMMSSZ), the
 *      scope (date/region/service/aws4_request) and the hex SHA-256 of the
 *      canonical request;
 *   3. signing key: HMAC-SHA256 chained over "AWS4"+secret, the date, the
 *      region, the service and "aws4_request";
 *   4. signature: hex HMAC-SHA256 of the string to sign under that key.
 *
 * URI encoding follows AWS's rules, not RFC 3986 libraries': every byte
 * except A-Z a-z 0-9 - . _ ~ becomes %XX with upper-case hex (a space is
 * %20, never '+'); '/' is kept only inside an object key's path. A path is
 * encoded exactly once: S3, unlike other services, does not want the
 * already-encoded path encoded again.
 *
 * Presigned URLs (erpq_sigv4_presign_url) carry the authentication in the
 * query string and sign only the host header, so that a browser can fetch
 * them. We always add response-content-disposition so the download gets a
 * proper file name. The parameter order of the URL is the one botocore
 * produces (operation parameters, then X-Amz-Algorithm, Credential, Date,
 * Expires, SignedHeaders, Security-Token, and Signature last); the tests
 * compare our URLs with botocore's byte for byte. Expiry is clamped to
 * 1..604800 s (seven days, S3's limit).
 *
 * Addressing: path style puts the bucket in the path
 * (http://127.0.0.1:9000/bucket/key), virtual-host style in the host name
 * (https://bucket.s3.eu-west-1.amazonaws.com/key). The endpoint is
 * scheme://host[:port] with no path; a port that is the scheme's default
 * is left out of the signed host header, as HTTP clients leave it out of
 * the Host header they send.
 *
 * Memory: functions that produce text append to a caller's erpq_buf (check
 * its oom flag, or use the functions that return int) or write into fixed
 * caller arrays whose sizes are in the prototypes. Nothing here keeps
 * state, so every function is thread-safe.
 */
#ifndef ERPQ_SIGV4_H
#define ERPQ_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_buf.h"

#define ERPQ_SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"
#define ERPQ_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERPQ_SIGV4_EXPIRES_MAX 604800 /* Seven days, in seconds. */

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void erpq_sigv4_hex(const unsigned char *in, size_t n, char *out);
/* Hex SHA-256 of len bytes. */
void erpq_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* Appends n bytes of s URI-encoded by AWS's rules; '/' is kept when
 * keep_slash is set (object keys), encoded as %2F otherwise. */
void erpq_sigv4_uri_encode(erpq_buf *b, const char *s, size_t n, int keep_slash);

/* "YYYYMMDDTHHMMSSZ" (UTC) of a unix time. Returns 0 or -EINVAL (before
 * 1970 or after 9999). */
int erpq_sigv4_amz_date(int64_t unix_s, char out[17]);

/* A header or query parameter: raw (unencoded) name and value. */
typedef struct erpq_sigv4_kv {
  const char *name;
  const char *value;
} erpq_sigv4_kv;

/* What is signed. canonical_uri is already encoded ("/test%24file.text");
 * query parameters and headers are raw, in any order, and must include
 * host; payload_hash is hex or ERPQ_SIGV4_UNSIGNED. */
typedef struct erpq_sigv4_req {
  const char *method;
  const char *canonical_uri;
  const erpq_sigv4_kv *query;
  size_t nquery;
  const erpq_sigv4_kv *headers;
  size_t nheaders;
  const char *payload_hash;
} erpq_sigv4_req;

/* The canonical request into out, and the ';'-joined signed header names
 * into signed_headers (may be NULL). Returns 0, -EINVAL (a header name that
 * is empty or not a token, a duplicate header) or -ENOMEM. */
int erpq_sigv4_canonical_request(const erpq_sigv4_req *r, erpq_buf *out, erpq_buf *signed_headers);

/* "date/region/service/aws4_request" into out; date is YYYYMMDD (the first
 * 8 characters of an amz date). Returns 0 or -EINVAL when too long. */
int erpq_sigv4_scope(const char *date8, const char *region, const char *service, char *out,
                     size_t outlen);

/* The string to sign for a canonical request. */
void erpq_sigv4_string_to_sign(const char *amz_date, const char *scope,
                               const char *canonical_request, erpq_buf *out);

/* The signing key of secret for one day, region and service. */
void erpq_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                            const char *service, unsigned char key[32]);

/* Hex HMAC-SHA256 of string_to_sign under key. */
void erpq_sigv4_signature(const unsigned char key[32], const char *string_to_sign, char out[65]);

/* Credentials and scope. session_token may be NULL or "" (none). */
typedef struct erpq_sigv4_cred {
  const char *access_key_id;
  const char *secret_access_key;
  const char *session_token;
  const char *region;
  const char *service; /* "s3" */
} erpq_sigv4_cred;

/* The whole Authorization header value for r signed at amz_date:
 * "AWS4-HMAC-SHA256 Credential=AK/scope,SignedHeaders=...,Signature=...".
 * r's headers must already hold x-amz-date (= amz_date) and whatever else
 * is to be signed. Returns 0, -EINVAL or -ENOMEM. */
int erpq_sigv4_authorization(const erpq_sigv4_cred *c, const erpq_sigv4_req *r,
                             const char *amz_date, erpq_buf *out);

/* Where an object lives. endpoint is scheme://host[:port] (http or https,
 * no path, no query). */
typedef struct erpq_sigv4_target {
  const char *endpoint;
  int virtual_host; /* 1: bucket.host/key; 0: host/bucket/key. */
  const char *bucket;
  const char *key;
} erpq_sigv4_target;

/* The object's URL without query (into url), the host header value (into
 * host, may be NULL) and the canonical URI (into uri, may be NULL).
 * Returns 0, -EINVAL with a sentence in err (bad endpoint, empty key or
 * bucket) or -ENOMEM. */
int erpq_sigv4_object_url(const erpq_sigv4_target *t, erpq_buf *url, erpq_buf *host, erpq_buf *uri,
                          char *err, size_t errlen);

/* "attachment; filename=\"<ascii>\"; filename*=UTF-8''<encoded>": the
 * ASCII fallback keeps printable ASCII except '"', '\\' and '%' and writes
 * '_' for every other character (a whole UTF-8 sequence gives one '_');
 * the extended form percent-encodes the UTF-8 bytes (RFC 8187 attr-chars
 * kept). Control characters become '_' in both. Appends to out. */
void erpq_sigv4_content_disposition(const char *file_name, erpq_buf *out);

/* A presigned GET. file_name may be NULL (no response-content-disposition).
 * expires_s is clamped to 1..ERPQ_SIGV4_EXPIRES_MAX. now is unix seconds. */
typedef struct erpq_sigv4_presign {
  erpq_sigv4_target target;
  erpq_sigv4_cred cred;
  const char *file_name;
  int64_t expires_s;
  int64_t now;
} erpq_sigv4_presign;

/* The URL, malloc'ed into *url (caller frees). Returns 0, -EINVAL with a
 * sentence in err, or -ENOMEM. */
int erpq_sigv4_presign_url(const erpq_sigv4_presign *p, char **url, char *err, size_t errlen);

#endif
