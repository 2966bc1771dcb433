/* Zone names, the process-wide zone cache and the preload (see erpq_tz.h). */
#include "erpq_tz.h"

#include "erpq_err.h"
#include "erpq_tz_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *zoneinfo_dir(void) {
  const char *d = getenv("TZDIR");
  return d && *d ? d : "/usr/share/zoneinfo";
}

static int name_is_safe(const char *name) {
  if (name[0] == '/' || strstr(name, "..") || strlen(name) > 255)
    return 0;
  for (const char *p = name; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == '\\')
      return 0;
  }
  return 1;
}

/* Finds a file under dir whose path matches name case-blind, component by
 * component.  Writes the real path into out. */
static int find_casefold(const char *dir, const char *name, char *out, size_t outlen) {
  char cur[PATH_MAX];
  if (snprintf(cur, sizeof cur, "%s", dir) >= (int)sizeof cur)
    return -ENAMETOOLONG;
  const char *p = name;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t clen = slash ? (size_t)(slash - p) : strlen(p);
    if (clen == 0)
      return -ENOENT;
    DIR *d = opendir(cur);
    if (!d)
      return -ENOENT;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d))) {
      if (strlen(de->d_name) == clen && strncasecmp(de->d_name, p, clen) == 0) {
        size_t l = strlen(cur);
        if (l + 1 + clen + 1 > sizeof cur)
          break;
        cur[l] = '/';
        memcpy(cur + l + 1, de->d_name, clen + 1);
        found = 1;
        break;
      }
    }
    closedir(d);
    if (!found)
      return -ENOENT;
    p += clen;
    if (*p == '/')
      p++;
  }
  if (snprintf(out, outlen, "%s", cur) >= (int)outlen)
    return -ENAMETOOLONG;
  return 0;
}

/* Parses luxon's fixed-offset specifier "UTC", "UTC+5", "utc-03:30". */
static int parse_utc_specifier(const char *s, int32_t *off) {
  if (strncasecmp(s, "utc", 3) != 0)
    return 0;
  s += 3;
  if (!*s) {
    *off = 0;
    return 1;
  }
  if (*s != '+' && *s != '-')
    return 0;
  int neg = *s++ == '-';
  if (!isdigit((unsigned char)s[0]))
    return 0;
  int h = s[0] - '0', n = 1;
  if (isdigit((unsigned char)s[1]))
    h = h * 10 + (s[n++] - '0');
  s += n;
  int m = 0;
  if (*s == ':') {
    if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]) || s[3])
      return 0;
    m = (s[1] - '0') * 10 + (s[2] - '0');
  } else if (*s) {
    return 0;
  }
  *off = (neg ? -1 : 1) * (h * 3600 + m * 60);
  return 1;
}

/* ---- The cache ------------------------------------------------------------
 * An array sorted by key (strcmp), so a lookup is a binary search.  Keys are
 * the names as asked for ("" is the local zone).  Once sealed (by
 * erpq_tz_preload()) a miss never reads a file. */

typedef struct {
  char *name;
  erpq_tz *tz;
} cache_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry *cache;
static size_t cache_len, cache_cap;
static int cache_sealed;
static char cache_dir[PATH_MAX]; /* The directory the preload read. */

/* Index of key, or of where it would go (*found 0).  Lock held. */
static size_t cache_pos(const char *key, int *found) {
  size_t lo = 0, hi = cache_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(cache[mid].name, key);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

static erpq_tz *cache_get(const char *key, int *sealed) {
  erpq_tz *tz = NULL;
  int found;
  pthread_mutex_lock(&cache_lock);
  size_t i = cache_pos(key, &found);
  if (found)
    tz = erpq_tz_ref(cache[i].tz);
  *sealed = cache_sealed;
  pthread_mutex_unlock(&cache_lock);
  return tz;
}

/* Inserts (key, a new reference to tz) unless key is there.  Lock held.
 * Returns the cached zone (not a new reference), or NULL when memory ran
 * out (tz is then simply not cached). */
static erpq_tz *cache_insert_locked(const char *key, erpq_tz *tz) {
  int found;
  size_t i = cache_pos(key, &found);
  if (found)
    return cache[i].tz;
  if (cache_len == cache_cap) {
    size_t ncap = cache_cap ? cache_cap * 2 : 64;
    cache_entry *n = realloc(cache, ncap * sizeof *n);
    if (!n)
      return NULL;
    cache = n;
    cache_cap = ncap;
  }
  char *k = strdup(key);
  if (!k)
    return NULL;
  memmove(cache + i + 1, cache + i, (cache_len - i) * sizeof *cache);
  cache[i].name = k;
  cache[i].tz = erpq_tz_ref(tz);
  cache_len++;
  return tz;
}

/* Stores tz under key unless another thread got there first; returns the
 * zone to use (a reference owned by the caller) and consumes tz. */
static erpq_tz *cache_put(const char *key, erpq_tz *tz) {
  pthread_mutex_lock(&cache_lock);
  erpq_tz *in = cache_insert_locked(key, tz);
  if (in && in != tz) {
    erpq_tz *old = erpq_tz_ref(in);
    pthread_mutex_unlock(&cache_lock);
    erpq_tz_free(tz);
    return old;
  }
  pthread_mutex_unlock(&cache_lock);
  return tz; /* Cached, or uncached but usable. */
}

void erpq_tz_cache_flush(void) {
  pthread_mutex_lock(&cache_lock);
  for (size_t i = 0; i < cache_len; i++) {
    free(cache[i].name);
    erpq_tz_free(cache[i].tz);
  }
  free(cache);
  cache = NULL;
  cache_len = cache_cap = 0;
  cache_sealed = 0;
  cache_dir[0] = '\0';
  pthread_mutex_unlock(&cache_lock);
}

/* A sealed cache's answer to a name it does not hold: the same zone under
 * another letter case (an alias, no file read), Etc/UTC and Etc/GMT as
 * fixed zones, or unknown. */
static int sealed_miss(const char *name, erpq_tz **out, char *err, size_t errlen) {
  erpq_tz *hit = NULL;
  pthread_mutex_lock(&cache_lock);
  for (size_t i = 0; i < cache_len && !hit; i++)
    if (cache[i].name[0] && strcasecmp(cache[i].name, name) == 0)
      hit = erpq_tz_ref(cache[i].tz);
  size_t n = cache_len;
  pthread_mutex_unlock(&cache_lock);
  if (hit) {
    erpq_tz *a = erpq_tz_alias(hit, name);
    erpq_tz_free(hit);
    if (!a)
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
    *out = a;
    return 0;
  }
  if (strcmp(name, "Etc/UTC") == 0 || strcmp(name, "Etc/GMT") == 0)
    return erpq_tz_fixed(0, out, err, errlen);
  return erpq_fail(err, errlen, -ENOENT,
                   "unknown time zone \"%s\" (not among the %zu zones loaded from %s)", name, n,
                   cache_dir[0] ? cache_dir : "the zoneinfo directory");
}

/* ---- Loading by name ------------------------------------------------------ */

/* Loads an IANA name from the zoneinfo directory (no cache). */
static int load_iana(const char *name, erpq_tz **out, char *err, size_t errlen) {
  const char *dir = zoneinfo_dir();
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
    return erpq_fail(err, errlen, ERPQ_E_ARG, "time zone name \"%s\" is too long", name);
  }
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
    if (find_casefold(dir, name, path, sizeof path) < 0 || stat(path, &st) < 0 ||
        !S_ISREG(st.st_mode)) {
      if (strcmp(name, "Etc/UTC") == 0 || strcmp(name, "Etc/GMT") == 0) {
        return erpq_tz_fixed(0, out, err, errlen);
      }
      return erpq_fail(err, errlen, -ENOENT, "unknown time zone \"%s\" (no such file in %s)", name,
                       dir);
    }
  }
  int rc = erpq_tz_load_file(path, name, out, err, errlen);
  if (rc < 0 && rc != -ENOMEM) {
    return erpq_fail(err, errlen, rc, "unknown time zone \"%s\" (%s is not a TZif file)", name,
                     path);
  }
  return rc;
}

/* Works out the process's local zone (see the header). */
static int load_local(erpq_tz **out, char *err, size_t errlen) {
  const char *env = getenv("TZ");
  if (env) {
    if (!*env)
      return erpq_tz_fixed(0, out, err, errlen);
    const char *s = *env == ':' ? env + 1 : env;
    if (*s == '/') {
      if (erpq_tz_load_file(s, s, out, NULL, 0) == 0)
        return 0;
    } else if (*s && name_is_safe(s)) {
      char path[PATH_MAX];
      if (snprintf(path, sizeof path, "%s/%s", zoneinfo_dir(), s) < (int)sizeof path &&
          erpq_tz_load_file(path, s, out, NULL, 0) == 0) {
        return 0;
      }
    }
    if (erpq_tz_from_posix(s, out, NULL, 0) == 0)
      return 0;
    return erpq_tz_fixed(0, out, err, errlen);
  }
  char link[PATH_MAX];
  const char *name = "/etc/localtime";
  ssize_t n = readlink("/etc/localtime", link, sizeof link - 1);
  if (n > 0) {
    link[n] = '\0';
    const char *z = strstr(link, "zoneinfo/");
    if (z)
      name = z + strlen("zoneinfo/");
  }
  if (erpq_tz_load_file("/etc/localtime", name, out, NULL, 0) == 0)
    return 0;
  return erpq_tz_fixed(0, out, err, errlen);
}

int erpq_tz_load(const char *name, erpq_tz **out, char *err, size_t errlen) {
  *out = NULL;
  int local = !name || !*name || strcasecmp(name, "local") == 0 ||
              strcasecmp(name, "system") == 0 || strcasecmp(name, "default") == 0;
  const char *key = local ? "" : name;
  int sealed;
  erpq_tz *tz = cache_get(key, &sealed);
  if (tz) {
    *out = tz;
    return 0;
  }
  int rc;
  int32_t off;
  if (local) {
    rc = load_local(&tz, err, errlen); /* Never reached once sealed: "" is cached. */
  } else if (strcasecmp(name, "gmt") == 0 || parse_utc_specifier(name, &off)) {
    rc = erpq_tz_fixed(strcasecmp(name, "gmt") == 0 ? 0 : off, &tz, err, errlen);
  } else if (!name_is_safe(name)) {
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "refusing time zone name \"%s\" (absolute or contains \"..\")", name);
  } else if (sealed) {
    return sealed_miss(name, out, err, errlen); /* Not cached: names are unbounded. */
  } else {
    rc = load_iana(name, &tz, err, errlen);
  }
  if (rc < 0)
    return rc;
  *out = cache_put(key, tz);
  return 0;
}

/* ---- The preload ------------------------------------------------------------ */

/* A zone file already parsed during one preload, by identity, so that the
 * links and symbolic links of tzdata (US/Eastern, America/New_York) share
 * one table. */
typedef struct {
  dev_t dev;
  ino_t ino;
  erpq_tz *tz; /* Borrowed from the cache. */
} seen_file;

typedef struct {
  char root[PATH_MAX];
  seen_file *seen;
  size_t nseen, capseen;
  erpq_tz_preload_stats st;
  int rc;
  char *err;
  size_t errlen;
} preload_walk;

static erpq_tz *seen_find(const preload_walk *w, const struct stat *st) {
  for (size_t i = 0; i < w->nseen; i++)
    if (w->seen[i].dev == st->st_dev && w->seen[i].ino == st->st_ino)
      return w->seen[i].tz;
  return NULL;
}

static void seen_add(preload_walk *w, const struct stat *st, erpq_tz *tz) {
  if (w->nseen == w->capseen) {
    size_t ncap = w->capseen ? w->capseen * 2 : 256;
    seen_file *n = realloc(w->seen, ncap * sizeof *n);
    if (!n)
      return; /* Only sharing is lost. */
    w->seen = n;
    w->capseen = ncap;
  }
  w->seen[w->nseen++] = (seen_file){st->st_dev, st->st_ino, tz};
}

/* Adds the zone file at path under name (relative to the root). */
static void preload_file(preload_walk *w, const char *path, const char *name,
                         const struct stat *stp) {
  struct stat st = *stp;
  erpq_tz *tz = NULL, *owner = seen_find(w, &st);
  if (owner) {
    tz = erpq_tz_alias(owner, name);
    if (!tz) {
      w->rc = erpq_fail(w->err, w->errlen, -ENOMEM, "out of memory");
      return;
    }
    w->st.aliases++;
  } else {
    char lerr[256];
    int rc = erpq_tz_load_file(path, name, &tz, lerr, sizeof lerr);
    if (rc == -ENOMEM) {
      w->rc = erpq_fail(w->err, w->errlen, rc, "out of memory");
      return;
    }
    if (rc < 0) {
      w->st.skipped++; /* zone.tab, tzdata.zi, leapseconds, ... */
      return;
    }
    w->st.files++;
    w->st.file_bytes += (size_t)st.st_size;
  }
  pthread_mutex_lock(&cache_lock);
  erpq_tz *in = cache_insert_locked(name, tz);
  if (in == tz) {
    w->st.zones++;
    w->st.bytes += erpq_tz_table_bytes(tz) + sizeof(cache_entry) + strlen(name) + 1;
  }
  pthread_mutex_unlock(&cache_lock);
  if (!in)
    w->rc = erpq_fail(w->err, w->errlen, -ENOMEM, "out of memory");
  if (!owner && in)
    seen_add(w, &st, in);
  erpq_tz_free(tz);
}

/* Walks rel (relative to the root, "" for the root itself). */
static void preload_dir(preload_walk *w, const char *rel, int depth) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s%s%s", w->root, *rel ? "/" : "", rel) >= (int)sizeof path)
    return;
  DIR *d = opendir(path);
  if (!d) {
    if (!*rel)
      w->rc = erpq_fail(w->err, w->errlen, -errno, "cannot read the zoneinfo directory %s: %s",
                        w->root, strerror(errno));
    return;
  }
  struct dirent *de;
  while (!w->rc && (de = readdir(d))) {
    const char *b = de->d_name;
    if (b[0] == '.')
      continue;
    /* right/ and posix/ repeat every zone (with leap seconds, or the same
     * data again); localtime is the system's own zone, not a name. */
    if (!*rel && (!strcmp(b, "right") || !strcmp(b, "posix") || !strcmp(b, "localtime")))
      continue;
    char sub[PATH_MAX], full[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", b) >= (int)sizeof sub ||
        snprintf(full, sizeof full, "%s/%s", w->root, sub) >= (int)sizeof full)
      continue;
    struct stat st;
    if (stat(full, &st) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth < 6)
        preload_dir(w, sub, depth + 1);
    } else if (S_ISREG(st.st_mode) && name_is_safe(sub)) {
      preload_file(w, full, sub, &st);
    }
  }
  closedir(d);
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int erpq_tz_preload(erpq_tz_preload_stats *stats, char *err, size_t errlen) {
  int64_t t0 = mono_us();
  preload_walk *w = calloc(1, sizeof *w);
  if (!w)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  snprintf(w->root, sizeof w->root, "%s", zoneinfo_dir());
  w->err = err;
  w->errlen = errlen;
  preload_dir(w, "", 0);
  int rc = w->rc;
  /* The local zone, so that "local" never reads /etc/localtime later. */
  int sealed;
  erpq_tz *loc = cache_get("", &sealed);
  if (!loc && load_local(&loc, NULL, 0) == 0)
    loc = cache_put("", loc);
  erpq_tz_free(loc);
  /* Sealed even after a failure: the loop must never read a file, and a
   * zone that could not be loaded now is unknown rather than late. */
  pthread_mutex_lock(&cache_lock);
  cache_sealed = 1;
  snprintf(cache_dir, sizeof cache_dir, "%s", w->root);
  pthread_mutex_unlock(&cache_lock);
  w->st.micros = mono_us() - t0;
  if (stats)
    *stats = w->st;
  free(w->seen);
  free(w);
  return rc;
}
