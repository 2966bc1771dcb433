/*
 * erpq_storage_internal.h - the local-directory backend's functions, as
 * erpq_storage.c dispatches to them; not for users of lib/storage.
 *
 * The storage object owns its configuration copy and, for S3, the
 * erpq_s3 client. A local upload (st_local_upload) owns its temporary
 * file's descriptor and path until finish renames it or abort removes
 * it. Keys reaching these functions have passed erpq_storage_key_check.
 */
#ifndef ERPQ_STORAGE_INTERNAL_H
#define ERPQ_STORAGE_INTERNAL_H

#include "erpq_storage.h"

struct erpq_storage {
  erpq_storage_conf conf;
  erpq_s3 *s3; /* S3 backend only. */
};

typedef struct st_local_upload st_local_upload;

/* Creates the base directory (and its parents) when missing. */
int st_local_init(const erpq_storage *st, char *err, size_t errlen);
int st_local_begin(const erpq_storage *st, const char *key, const erpq_s3_cancel *cancel,
                   st_local_upload **out, char *err, size_t errlen);
int st_local_write(st_local_upload *u, const void *buf, size_t len, char *err, size_t errlen);
/* Frees u in every case. */
int st_local_finish(st_local_upload *u, erpq_storage_result *res, char *err, size_t errlen);
void st_local_abort(st_local_upload *u);
int st_local_head(const erpq_storage *st, const char *key, erpq_storage_info *out, char *err,
                  size_t errlen);
int st_local_delete(const erpq_storage *st, const char *key, char *err, size_t errlen);
int st_local_open(const erpq_storage *st, const char *key, int *fd, uint64_t *size, char *err,
                  size_t errlen);

#endif
