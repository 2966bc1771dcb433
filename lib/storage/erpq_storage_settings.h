/*
 * erpq_storage_settings.h - the storage settings as option-table entries
 * (core/erpq_args.h), for every program that reads report files' storage
 * configuration: the reports family of erpq-worker (it writes), and
 * erpq-producer's `download` command and HTTP API (they sign links and
 * read objects). One list, so the three accept exactly the same flags,
 * variables and <VAR>_FILE secrets, and erpq_storage_conf_read() (which
 * asks erpq_args_lookup() by variable name) finds every one it reads: a
 * variable no table declares answers NULL.
 *
 * Use it inside a table, followed by the table's own entries and the
 * terminator:
 *
 *   static const erpq_opt my_settings[] = {
 *       ERPQ_STORAGE_SETTINGS,
 *       {"my-flag", ERPQ_OPT_INT, ...},
 *       {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};
 *
 * No entry has a default: unset values fall back to the defaults of
 * erpq_s3.h and erpq_storage.h, which is where they are documented (and
 * an unset ERPQ_S3_BUCKET with an unset ERPQ_STORAGE_DIR is an error, not
 * a silent directory under /tmp). Secrets are ERPQ_OPT_SECRET: never
 * printed, and also read from <VAR>_FILE.
 *
 * A macro of constant initialisers: no state, nothing to free.
 */
#ifndef ERPQ_STORAGE_SETTINGS_H
/* clang-format off */
#define ERPQ_STORAGE_OPT_(name, kind, env, meta, help, min, max, flags) \
  {name, kind, env, meta, help, min, max, NULL, flags}

#define ERPQ_STORAGE_SETTINGS \
  ERPQ_STORAGE_OPT_("s3-bucket", ERPQ_OPT_STRING, "ERPQ_S3_BUCKET", "NAME", \
    "report files in this S3 bucket (unset: the local directory ERPQ_STORAGE_DIR)", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-endpoint", ERPQ_OPT_STRING, "ERPQ_S3_ENDPOINT", "URL", \
    "S3 endpoint http(s)://host[:port] (default: AWS for the region)", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-region", ERPQ_OPT_STRING, "ERPQ_S3_REGION", "REGION", \
    "S3 signing region (default us-east-1)", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-addressing", ERPQ_OPT_STRING, "ERPQ_S3_ADDRESSING", "path|virtual", \
    "S3 addressing style (default: path for a custom endpoint, virtual for AWS)", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-access-key-id", ERPQ_OPT_STRING, "ERPQ_S3_ACCESS_KEY_ID", "ID", \
    "S3 access key id", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-secret-access-key", ERPQ_OPT_STRING, "ERPQ_S3_SECRET_ACCESS_KEY", "KEY", \
    "S3 secret access key", 0, 0, ERPQ_OPT_SECRET), \
  ERPQ_STORAGE_OPT_("s3-session-token", ERPQ_OPT_STRING, "ERPQ_S3_SESSION_TOKEN", "TOKEN", \
    "S3 session token of temporary credentials", 0, 0, ERPQ_OPT_SECRET), \
  ERPQ_STORAGE_OPT_("s3-sse", ERPQ_OPT_STRING, "ERPQ_S3_SSE", "AES256|aws:kms", \
    "S3 server-side encryption (default: the bucket's)", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-sse-kms-key-id", ERPQ_OPT_STRING, "ERPQ_S3_SSE_KMS_KEY_ID", "ID", \
    "KMS key of aws:kms encryption (default: the bucket's)", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("s3-part-size", ERPQ_OPT_INT, "ERPQ_S3_PART_SIZE", "BYTES", \
    "S3 multipart part size, 5 MiB to 5 GiB (default 8 MiB)", 5242880, INT64_C(5368709120), 0), \
  ERPQ_STORAGE_OPT_("s3-connect-timeout", ERPQ_OPT_INT, "ERPQ_S3_CONNECT_TIMEOUT", "S", \
    "S3 connect timeout (default 10)", 1, 3600, 0), \
  ERPQ_STORAGE_OPT_("s3-stall-timeout", ERPQ_OPT_INT, "ERPQ_S3_STALL_TIMEOUT", "S", \
    "an S3 transfer below 1 byte/s for this long fails and is retried (default 30)", 1, 3600, 0), \
  ERPQ_STORAGE_OPT_("storage-dir", ERPQ_OPT_STRING, "ERPQ_STORAGE_DIR", "DIR", \
    "report files in this local directory when ERPQ_S3_BUCKET is unset", 0, 0, 0), \
  ERPQ_STORAGE_OPT_("storage-secret", ERPQ_OPT_STRING, "ERPQ_STORAGE_SECRET", "TEXT", \
    "signs local download links (32+ bytes, shared by worker and HTTP API)", 0, 0, \
    ERPQ_OPT_SECRET), \
  ERPQ_STORAGE_OPT_("public-url", ERPQ_OPT_STRING, "ERPQ_PUBLIC_URL", "URL", \
    "base of local download links: the HTTP API as users reach it\n" \
    "(default http://127.0.0.1:8080)", 0, 0, 0)
/* clang-format on */

#endif
