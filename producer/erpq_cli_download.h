/*
 * erpq_cli_download.h - `erpq-producer download QUEUE ID [-o FILE]`: fetches
 * the file of a completed report job.
 *
 * The job's returnvalue (jobs/reports/erpq_reports.h) names where the file
 * is: {storage: "s3"|"local", bucket, key, fileName, sha256}. The command
 * reads it from Redis (bull's job hash, as `status` does), then the object
 * through lib/storage configured by the same settings as the worker
 * (ERPQ_S3_* or ERPQ_STORAGE_DIR, erpq_storage_settings.h; as flags,
 * variables or _FILE), so it works for both backends: S3 with a signed GET,
 * local by reading the directory (the command must run where that
 * directory is). It writes FILE (-o / --output; "-" is stdout), or the
 * result's fileName in the current directory, through a temporary file
 * renamed into place once the download's SHA-256 equals the result's
 * sha256, and prints {"file","bytes","sha256"} (to stderr with -o -).
 *
 * Exit codes as the other commands (erpq_cli.h): 0 done; 1 no such job,
 * not completed, not a report, stored in a storage not configured here,
 * object gone, checksum mismatch, or a storage error; 2 bad arguments or
 * storage settings; 4 Redis unreachable; 5 Redis error.
 */
#ifndef ERPQ_CLI_DOWNLOAD_H
#define ERPQ_CLI_DOWNLOAD_H

#include "erpq_args.h"
#include "erpq_cli.h"

/* The command's options: --output FILE (main.c turns -o into --output)
 * and the storage settings. */
extern const erpq_opt erpq_cli_download_opts[];

/* Runs the command; a holds the parsed options above. Returns the exit code. */
int erpq_cli_download(const erpq_cli *cli, const erpq_args *a, const char *queue, const char *id);

#endif
