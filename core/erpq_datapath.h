/*
 * erpq_datapath.h - where erpq finds its read-only data files.
 *
 * Data files: roles.json (HTTP API access policy), openapi.yaml,
 * migrations/ (MySQL), templates/ (e-mail, SMS), schemas/jobs/<family>/
 * (copies of the job schemas, which the binaries also embed). One rule for
 * every one of them, and no guess relative to the current directory:
 *
 *   1. an override (a flag or its environment variable), used exactly as
 *      given: when it does not exist that is an error naming it, never a
 *      fall-back to something else;
 *   2. <directory of the running binary>/../share/erpq: the data installed
 *      with this very binary (`cmake --install --prefix P` puts the binaries
 *      in P/bin and the data in P/share/erpq, whatever P is), and in a build
 *      tree the copy the build stages in <build>/share/erpq next to
 *      <build>/bin;
 *   3. the data directory of the install prefix the build was configured
 *      with (ERPQ_DATADIR, compiled in), for a binary copied elsewhere.
 *
 * A lookup that finds nothing fails with every place it looked at in err.
 * Thread-safe (the binary's own path is read once).
 */
#ifndef ERPQ_DATAPATH_H
#define ERPQ_DATAPATH_H

#include <stddef.h>

/* Finds rel (a file or directory name under the data directory, e.g.
 * "roles.json", "migrations") or takes override (may be NULL or "": none;
 * origin names where it came from, e.g. "--roles" or "ERPQ_ROLES_FILE").
 * Writes the path to out. Returns 0, or -ENOENT with err listing what was
 * looked at. */
int erpq_datapath(const char *rel, const char *override, const char *origin, char *out,
                  size_t outlen, char *err, size_t errlen);

/* The data directory itself (rule 2, then 3), or -ENOENT. */
int erpq_datadir(char *out, size_t outlen, char *err, size_t errlen);

#endif
