/* erpq_cli_download.c - `erpq-producer download` (see erpq_cli_download.h). */
#include "erpq_cli_download.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "erpq_bull.h"
#include "erpq_err.h"
#include "erpq_redis_sync.h"
#include "erpq_scripts.h"
#include "erpq_storage.h"
#include "erpq_storage_settings.h"
#include "erpq_util.h"

const erpq_opt erpq_cli_download_opts[] = {
    {"output", ERPQ_OPT_STRING, NULL, "FILE", "", 0, 0, NULL, 0},
    ERPQ_STORAGE_SETTINGS,
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static int exit_for(int rc) {
  return rc == ERPQ_E_CONN ? ERPQ_EXIT_CONN : rc == ERPQ_E_ARG ? ERPQ_EXIT_USAGE : ERPQ_EXIT_REDIS;
}

/* The job's view (erpq_bull_parse_state), or NULL with *ex set. */
static json_t *read_job(const erpq_cli *cli, const char *queue, const char *id, int *ex) {
  char err[1024];
  erpq_keys k;
  int rc = erpq_scripts_init();
  if (rc) {
    erpq_cli_error("cannot load the Lua scripts: %s", erpq_strerror(rc));
    *ex = ERPQ_EXIT_REDIS;
    return NULL;
  }
  if ((rc = erpq_keys_init(&k, cli->prefix, queue))) {
    erpq_cli_error("bad queue name or prefix: %s", erpq_strerror(rc));
    *ex = rc == ERPQ_E_ARG ? ERPQ_EXIT_USAGE : ERPQ_EXIT_REDIS;
    return NULL;
  }
  erpq_sync s;
  if ((rc = erpq_sync_connect(&s, &cli->addr, cli->cmd_timeout_ms, err, sizeof err))) {
    erpq_cli_error("%s", err);
    erpq_keys_free(&k);
    *ex = exit_for(rc);
    return NULL;
  }
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_state(&c, &k, id);
  redisReply *r = NULL;
  rc = erpq_sync_run(&s, &c, &r, err, sizeof err);
  erpq_cmd_free(&c);
  json_t *view = NULL;
  if (rc) {
    erpq_cli_error("%s", err);
    *ex = exit_for(rc);
  } else if (r->type == REDIS_REPLY_NIL) {
    erpq_cli_error("job %s not found in queue %s", id, queue);
    *ex = ERPQ_EXIT_FAIL;
  } else if (!(view = erpq_bull_parse_state(r, id))) {
    erpq_cli_error("unexpected reply from Redis to the state script");
    *ex = ERPQ_EXIT_REDIS;
  }
  if (r)
    freeReplyObject(r);
  erpq_sync_close(&s);
  erpq_keys_free(&k);
  return view;
}

/* SHA-256 of a file, hex. */
static int file_sha256(const char *path, char out[65], uint64_t *bytes) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
  unsigned char buf[65536];
  ssize_t n;
  *bytes = 0;
  while (!rc && (n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      rc = -errno;
      break;
    }
    if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
      rc = -ENOMEM;
    *bytes += (uint64_t)n;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dl = 0;
  if (!rc && (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32))
    rc = -ENOMEM;
  for (unsigned i = 0; !rc && i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
  EVP_MD_CTX_free(md);
  close(fd);
  return rc;
}

/* Copies the local object into path. */
static int copy_local(const erpq_storage *st, const char *key, const char *path, char *err,
                      size_t errlen) {
  int in = -1;
  int rc = erpq_storage_open(st, key, &in, NULL, err, errlen);
  if (rc)
    return rc;
  int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    rc = erpq_fail(err, errlen, -errno, "cannot create %s: %s", path, strerror(errno));
    close(in);
    return rc;
  }
  char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0) {
        rc = erpq_fail(err, errlen, -errno, "cannot write %s: %s", path, strerror(errno));
        break;
      }
      off += w;
    }
    if (rc)
      break;
  }
  if (!rc && n < 0)
    rc = erpq_fail(err, errlen, -errno, "cannot read the report file: %s", strerror(errno));
  if (close(out) && !rc)
    rc = erpq_fail(err, errlen, -errno, "cannot write %s: %s", path, strerror(errno));
  close(in);
  return rc;
}

/* Streams a finished file to stdout. */
static int cat_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -errno;
  char buf[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (fwrite(buf, 1, n, stdout) != n) {
      rc = -EIO;
      break;
    }
  fclose(f);
  return fflush(stdout) ? -EIO : rc;
}

/* Where the result says the file is, checked against this configuration. */
static int locate(const json_t *view, const erpq_storage_conf *c, const char **key,
                  const char **name, const char **sha) {
  const char *state = json_string_value(json_object_get(view, "state"));
  if (!state || strcmp(state, "completed")) {
    erpq_cli_error("the job is %s, not completed: no report to download yet",
                   state ? state : "in an unknown state");
    return ERPQ_EXIT_FAIL;
  }
  const json_t *rv = json_object_get(view, "returnvalue");
  const char *kind = json_string_value(json_object_get(rv, "storage"));
  *key = json_string_value(json_object_get(rv, "key"));
  *name = json_string_value(json_object_get(rv, "fileName"));
  *sha = json_string_value(json_object_get(rv, "sha256"));
  if (!kind || !*key) {
    erpq_cli_error("the job's result names no report file");
    return ERPQ_EXIT_FAIL;
  }
  const char *bucket = json_string_value(json_object_get(rv, "bucket"));
  if (c->kind == ERPQ_STORAGE_S3 ? strcmp(kind, "s3") || !bucket || strcmp(bucket, c->s3.bucket)
                                 : strcmp(kind, "local")) {
    erpq_cli_error("the report is in %s storage%s%s, not in the one configured here (%s)", kind,
                   bucket ? " bucket " : "", bucket ? bucket : "",
                   c->kind == ERPQ_STORAGE_S3 ? "ERPQ_S3_BUCKET" : "ERPQ_STORAGE_DIR");
    return ERPQ_EXIT_FAIL;
  }
  return 0;
}

/* The output path: -o FILE, or the result's file name (a plain name only). */
static int out_path(const erpq_args *a, const char *name, char *out, size_t outlen) {
  const char *o = erpq_args_str(a, "output");
  if (o && *o) {
    snprintf(out, outlen, "%s", o);
    return 0;
  }
  if (!name || !*name || strchr(name, '/') || name[0] == '.') {
    erpq_cli_error("the result has no usable file name: give one with -o FILE");
    return ERPQ_EXIT_USAGE;
  }
  snprintf(out, outlen, "%s", name);
  return 0;
}

int erpq_cli_download(const erpq_cli *cli, const erpq_args *a, const char *queue, const char *id) {
  char err[1024];
  erpq_storage_conf c;
  if (erpq_storage_conf_read(&c, erpq_args_lookup, (void *)a, err, sizeof err)) {
    erpq_cli_error("report storage: %s", err);
    erpq_storage_conf_clear(&c);
    return ERPQ_EXIT_USAGE;
  }
  int ex = 0;
  json_t *view = read_job(cli, queue, id, &ex);
  const char *key = NULL, *name = NULL, *sha = NULL;
  char path[4096], tmp[4200] = "";
  if (view && !(ex = locate(view, &c, &key, &name, &sha)))
    ex = out_path(a, name, path, sizeof path);
  int to_stdout = !ex && view && !strcmp(path, "-");
  if (!ex && view) {
    if (to_stdout)
      snprintf(tmp, sizeof tmp, "%s/erpq-download-XXXXXX",
               getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    else
      snprintf(tmp, sizeof tmp, "%s.part-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
      erpq_cli_error("cannot create %s: %s", tmp, strerror(errno));
      tmp[0] = '\0';
      ex = ERPQ_EXIT_FAIL;
    } else {
      mode_t um = umask(0);
      umask(um);
      if (fchmod(fd, 0666 & ~um)) { /* mkstemp makes it 0600 */
      }
      close(fd);
    }
  }
  int rc = 0;
  if (!ex && view) {
    if (c.kind == ERPQ_STORAGE_S3) {
      erpq_s3 *s3 = NULL;
      rc = erpq_s3_new(&s3, &c.s3, err, sizeof err);
      if (!rc)
        rc = erpq_s3_get_to_file(s3, key, tmp, NULL, NULL, err, sizeof err);
      erpq_s3_free(s3);
    } else {
      erpq_storage *st = NULL;
      rc = erpq_storage_new(&st, &c, err, sizeof err);
      if (!rc)
        rc = copy_local(st, key, tmp, err, sizeof err);
      erpq_storage_free(st);
    }
    if (rc == -ENOENT)
      erpq_cli_error("the report file no longer exists; run the report again");
    else if (rc)
      erpq_cli_error("download failed: %s", err);
    if (rc)
      ex = ERPQ_EXIT_FAIL;
  }
  char got[65] = "";
  uint64_t bytes = 0;
  if (!ex && view) {
    if ((rc = file_sha256(tmp, got, &bytes))) {
      erpq_cli_error("cannot read the download: %s", strerror(-rc));
      ex = ERPQ_EXIT_FAIL;
    } else if (sha && strcmp(sha, got)) {
      erpq_cli_error("the download's SHA-256 differs from the job's result: not saved");
      ex = ERPQ_EXIT_FAIL;
    } else if (to_stdout ? cat_file(tmp) != 0 : rename(tmp, path) != 0) {
      erpq_cli_error("cannot write %s: %s", to_stdout ? "stdout" : path, strerror(errno));
      ex = ERPQ_EXIT_FAIL;
    } else if (!to_stdout) {
      tmp[0] = '\0';
    }
  }
  if (tmp[0])
    unlink(tmp);
  if (!ex && view) {
    json_t *o = json_pack("{s:s,s:I,s:s}", "file", to_stdout ? "-" : path, "bytes",
                          (json_int_t)bytes, "sha256", got);
    char *s = o ? erpq_json_dump(o) : NULL;
    if (s)
      fprintf(to_stdout ? stderr : stdout, "%s\n", s);
    free(s);
    json_decref(o);
  }
  json_decref(view);
  erpq_storage_conf_clear(&c);
  return ex;
}
