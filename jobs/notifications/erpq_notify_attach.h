/*
 * erpq_notify_attach.h - a send-email job's attachments (stored report
 * files), read into memory before the message is built. What an
 * attachment entry may name, and the checks made, are described at the top
 * of erpq_notify_attach.c.
 *
 * Runs on a handler thread (it blocks: a Redis call through the worker's
 * connection, a file read or an S3 download). The array returned is owned
 * by the caller (nt_attachments_free). Errors: *permanent says the entry
 * can never work (missing, foreign, too large, attachments off); otherwise
 * a retry may succeed (a report not finished yet, S3 unreachable).
 */
#ifndef ERPQ_NOTIFY_ATTACH_H
#define ERPQ_NOTIFY_ATTACH_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_notify_internal.h"

typedef struct nt_attachment {
  char filename[256];
  char content_type[128];
  char *data;
  size_t len;
} nt_attachment;

int nt_attachments_load(erpq_jobctx *ctx, nt_ctx *nc, int64_t school, const json_t *arr,
                        nt_attachment **out, size_t *n, int *permanent, char *err, size_t errlen);
void nt_attachments_free(nt_attachment *a, size_t n);

#endif
