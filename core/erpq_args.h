/*
 * erpq_args.h - command-line options, their environment variables, and the
 * settings lookup every part of erpq reads its configuration through.
 *
 * A program describes its options in tables of erpq_opt (a job family adds
 * its own table to the worker's). erpq_args_parse() reads argv against the
 * tables and then resolves every option once, in this order:
 *
 *   1. the flag (--name VALUE or --name=VALUE; repeated for LIST options);
 *   2. the environment variable opt->env, when set and not empty;
 *   3. for ERPQ_OPT_SECRET options, the file named by <env>_FILE (its
 *      content with one trailing newline removed), so that secrets need not
 *      sit in the environment;
 *   4. opt->dflt (may be NULL: unset).
 *
 * INT options are range-checked at parse time, so a bad value anywhere
 * (flag, variable or file) is an error at start naming where it came from.
 * Unknown options are reported whole ("unknown option '--frobnicate'").
 * Parsing stops at the first positional argument when the caller asks
 * (ERPQ_ARGS_STOP: global options before a subcommand); the remaining
 * arguments are left for the subcommand. "--" ends the options.
 *
 * After parsing, the erpq_args object is read-only and may be shared by
 * threads. Values are owned by it (copies), valid until erpq_args_free().
 * erpq_args_lookup() has the shape of the configuration callback the
 * libraries take (const char *get(void *ud, const char *name)), keyed by
 * environment-variable name, so that a library asks for "ERPQ_S3_BUCKET"
 * and gets the flag, the variable or the file, whichever was given; names
 * no table declares answer NULL (a library cannot read configuration its
 * family did not declare).
 */
#ifndef ERPQ_ARGS_H
#define ERPQ_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
  ERPQ_OPT_FLAG,   /* --name (no value); env "1"/"true"/"yes" sets it */
  ERPQ_OPT_STRING, /* --name VALUE */
  ERPQ_OPT_INT,    /* --name N, within [min, max] */
  ERPQ_OPT_LIST    /* --name VALUE, repeatable; env: the whole list in one variable */
} erpq_opt_kind;

#define ERPQ_OPT_SECRET 1u /* Also read <env>_FILE; never printed. */
#define ERPQ_OPT_HIDDEN 2u /* Not listed by erpq_args_help(). */

typedef struct erpq_opt {
  const char *name; /* Long name without "--"; NULL ends a table. */
  erpq_opt_kind kind;
  const char *env;     /* Environment variable, or NULL. */
  const char *metavar; /* "MS", "URL": shown in help. */
  const char *help;    /* One line (may contain \n for more). */
  int64_t min, max;    /* INT range. */
  const char *dflt;    /* Default text, or NULL. */
  unsigned flags;      /* ERPQ_OPT_SECRET, ERPQ_OPT_HIDDEN. */
} erpq_opt;

typedef enum { ERPQ_SRC_NONE, ERPQ_SRC_FLAG, ERPQ_SRC_ENV, ERPQ_SRC_FILE, ERPQ_SRC_DEFAULT } erpq_src;

typedef struct erpq_args erpq_args;

#define ERPQ_ARGS_STOP 1u /* Stop at the first positional argument. */

/* Parses argv (argv[0] is not skipped: pass argc - 1, argv + 1 for a
 * program's arguments) against the NULL-terminated list of tables. On
 * success *out owns everything and *used (may be NULL) is the number of
 * arguments consumed; positional arguments are kept (erpq_args_pos()) unless
 * ERPQ_ARGS_STOP stopped there. Returns 0, ERPQ_E_ARG (err says why: unknown
 * option, missing value, bad number, unreadable _FILE, option given twice)
 * or -ENOMEM. */
int erpq_args_parse(erpq_args **out, const erpq_opt *const *tables, int argc, char **argv,
                    unsigned mode, int *used, char *err, size_t errlen);
void erpq_args_free(erpq_args *a);

/* The resolved value of option name (by long name), or NULL. */
const char *erpq_args_str(const erpq_args *a, const char *name);
/* The INT value; dflt when unset. */
int64_t erpq_args_int(const erpq_args *a, const char *name, int64_t dflt);
/* Whether a FLAG is set. */
int erpq_args_flag(const erpq_args *a, const char *name);
/* The values of a LIST option: the flags given, or the environment
 * variable as one element (the caller splits it). *vals is owned by a. */
size_t erpq_args_list(const erpq_args *a, const char *name, const char *const **vals);
/* Where an option's value came from (for error messages and start-up
 * logs: "--redis", "ERPQ_REDIS_URL", "ERPQ_JWT_SECRET_FILE"); "" if unset. */
const char *erpq_args_origin(const erpq_args *a, const char *name);
erpq_src erpq_args_source(const erpq_args *a, const char *name);

/* Positional arguments kept by the parse. */
int erpq_args_npos(const erpq_args *a);
const char *erpq_args_pos(const erpq_args *a, int i);

/* The value of the option whose environment variable is env, or NULL. */
const char *erpq_args_env(const erpq_args *a, const char *env);
/* The same as a configuration callback for libraries (ud: the erpq_args). */
const char *erpq_args_lookup(void *ud, const char *name);

/* Writes the option list of table (not HIDDEN ones) as help text. */
void erpq_args_help(FILE *f, const erpq_opt *table);

#endif
