/*
 * erpq_transport_conf.h - reading the transports' settings through the
 * caller's lookup callback.
 *
 * Library code never calls getenv(): the SMTP sender and the SMS client
 * read ERPQ_SMTP_* / ERPQ_SMS_* through a callback the caller provides,
 * get(ud, name), which returns the value or NULL (the worker passes one
 * that reads its environment; tests pass a table). An empty value counts
 * as unset. A secret X may instead come from the file named by X_FILE
 * (its content with one trailing newline, or CRLF, removed); setting both
 * is an error. Error sentences name the variable and never contain a
 * secret value.
 *
 * Stateless and thread-safe (as far as the callback is); secrets are
 * malloc'ed, owned by the caller, and released with erpq_conf_secret_free()
 * which wipes them first.
 */
#ifndef ERPQ_TRANSPORT_CONF_H
#define ERPQ_TRANSPORT_CONF_H

#include <stddef.h>
#include <stdint.h>

typedef const char *(*erpq_conf_get_fn)(void *ud, const char *name);

typedef struct erpq_conf_src {
  erpq_conf_get_fn get;
  void *ud;
} erpq_conf_src;

/* The value of name, or NULL when unset or empty. */
const char *erpq_conf_str(const erpq_conf_src *c, const char *name);

/* A decimal integer in [min, max]; dflt when unset. Returns 0 or
 * ERPQ_E_ARG with a sentence naming the variable. */
int erpq_conf_int(const erpq_conf_src *c, const char *name, int64_t dflt, int64_t min, int64_t max,
                  int64_t *out, char *err, size_t errlen);

/* The secret name, from name or from the file named by name_FILE.
 * (Named _dup, not erpq_conf_secret: lib/s3 exports a function of that
 * name with another signature, and the family links both.)
 * *out gets a malloc'ed copy, or NULL when neither is set. Returns 0,
 * ERPQ_E_ARG (both set, empty file), -errno (file unreadable) or -ENOMEM. */
int erpq_conf_secret_dup(const erpq_conf_src *c, const char *name, char **out, char *err,
                         size_t errlen);

/* Wipes and frees a secret (NULL is fine). */
void erpq_conf_secret_free(char *s);

#endif
