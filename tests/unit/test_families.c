/*
 * test_families.c - the plug-in seams of the worker, with a catalog and
 * families of the test's own (no family of jobs/ is linked):
 *   - erpq_args: flags, variables, <VAR>_FILE secrets, ranges, unknown
 *     options quoted whole, lists;
 *   - queue bindings: NAME[:N][@family,...], defaults, merging, ERPQ_QUEUES
 *     lists, a queue nobody serves, a job name two families serve;
 *   - family registration (erpq_familyset): handlers checked against the
 *     catalog both ways, collisions naming both families, per-family pools,
 *     init only for families that serve something;
 *   - the schema loader (built-in or an override directory that must be
 *     complete) and the roles-file drift check of erpq_jobtypes;
 *   - the data-path rule: an override is used as given or refused.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erpq_args.h"
#include "erpq_catalog.h"
#include "erpq_datapath.h"
#include "erpq_err.h"
#include "erpq_familyset.h"
#include "erpq_jobtypes.h"
#include "erpq_queues.h"
#include "erpq_registry.h"
#include "erpq_schemas.h"

/* ---- A catalog of our own ------------------------------------------------ */

static const char S_OBJ[] = "{\"type\":\"object\",\"required\":[\"n\"],\"properties\":{\"n\":{\"type\":\"integer\"}}}";
static const char S_ANY[] = "{}";

static const erpq_job_meta alpha_jobs[] = {{"send", S_OBJ, "alpha/send.json"},
                                           {"report", S_ANY, "alpha/report.json"}};
static const erpq_job_meta beta_jobs[] = {{"send", S_ANY, "beta/send.json"}};
static const erpq_job_meta gamma_jobs[] = {{"tally", S_ANY, "gamma/tally.json"}};
static const char *const alpha_q[] = {"mail", NULL};
static const char *const beta_q[] = {"sms", NULL};
static const char *const gamma_q[] = {"mail", "tallies", NULL};

static const erpq_family_meta CAT[] = {
    {"alpha", "a", alpha_q, alpha_jobs, 2},
    {"beta", "b", beta_q, beta_jobs, 1},
    {"gamma", "g", gamma_q, gamma_jobs, 1},
    {NULL, NULL, NULL, NULL, 0}};

/* ---- erpq_args --------------------------------------------------------------------- */

static const erpq_opt OPTS[] = {
    {"redis", ERPQ_OPT_STRING, "T_REDIS", "URL", "r", 0, 0, "redis://x", 0},
    {"count", ERPQ_OPT_INT, "T_COUNT", "N", "c", 1, 10, "3", 0},
    {"secret", ERPQ_OPT_STRING, "T_SECRET", "S", "s", 0, 0, NULL, ERPQ_OPT_SECRET},
    {"queue", ERPQ_OPT_LIST, "T_QUEUES", "Q", "q", 0, 0, NULL, 0},
    {"on", ERPQ_OPT_FLAG, "T_ON", NULL, "f", 0, 0, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};
static const erpq_opt *const TABLES[] = {OPTS, NULL};

static void clear_env(void) {
  unsetenv("T_REDIS"), unsetenv("T_COUNT"), unsetenv("T_SECRET"), unsetenv("T_SECRET_FILE");
  unsetenv("T_QUEUES"), unsetenv("T_ON");
}

static int parse(erpq_args **a, char *err, size_t errlen, int argc, ...) {
  char *argv[16];
  va_list ap;
  va_start(ap, argc);
  for (int i = 0; i < argc; i++) argv[i] = va_arg(ap, char *);
  va_end(ap);
  return erpq_args_parse(a, TABLES, argc, argv, 0, NULL, err, errlen);
}

Test(args, flags_env_defaults_and_origins) {
  clear_env();
  setenv("T_COUNT", "7", 1);
  setenv("T_QUEUES", "a:2 b", 1);
  erpq_args *a = NULL;
  char err[256];
  cr_assert_eq(parse(&a, err, sizeof err, 3, "--redis=redis://y", "--on", "pos"), 0, "%s", err);
  cr_assert_str_eq(erpq_args_str(a, "redis"), "redis://y");
  cr_assert_str_eq(erpq_args_origin(a, "redis"), "--redis");
  cr_assert_eq(erpq_args_int(a, "count", 0), 7);
  cr_assert_str_eq(erpq_args_origin(a, "count"), "T_COUNT");
  cr_assert(erpq_args_flag(a, "on"));
  const char *const *v;
  cr_assert_eq(erpq_args_list(a, "queue", &v), 1);
  cr_assert_str_eq(v[0], "a:2 b");
  cr_assert_eq(erpq_args_source(a, "queue"), ERPQ_SRC_ENV);
  cr_assert_eq(erpq_args_npos(a), 1);
  cr_assert_str_eq(erpq_args_pos(a, 0), "pos");
  cr_assert_str_eq(erpq_args_env(a, "T_REDIS"), "redis://y");
  cr_assert_null(erpq_args_env(a, "T_UNDECLARED"), "undeclared names answer NULL");
  erpq_args_free(a);
  /* Flags given twice and repeated lists; the default when nothing is set. */
  clear_env();
  cr_assert_eq(parse(&a, err, sizeof err, 4, "--queue", "x", "--queue", "y:3@alpha"), 0, "%s", err);
  cr_assert_eq(erpq_args_list(a, "queue", &v), 2);
  cr_assert_str_eq(v[1], "y:3@alpha");
  cr_assert_eq(erpq_args_int(a, "count", 0), 3);
  cr_assert_str_eq(erpq_args_str(a, "redis"), "redis://x");
  cr_assert_null(erpq_args_str(a, "secret"));
  erpq_args_free(a);
}

Test(args, refusals_name_the_culprit) {
  clear_env();
  erpq_args *a = NULL;
  char err[256];
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--frobnicate"), ERPQ_E_ARG);
  cr_assert_str_eq(err, "unknown option '--frobnicate'");
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--frobnicate=1"), ERPQ_E_ARG);
  cr_assert_str_eq(err, "unknown option '--frobnicate'");
  cr_assert_eq(parse(&a, err, sizeof err, 2, "--count", "11"), ERPQ_E_ARG);
  cr_assert(strstr(err, "--count") && strstr(err, "10"), "%s", err);
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--count"), ERPQ_E_ARG);
  cr_assert(strstr(err, "needs a value"), "%s", err);
  cr_assert_eq(parse(&a, err, sizeof err, 4, "--redis", "a", "--redis", "b"), ERPQ_E_ARG);
  cr_assert(strstr(err, "twice"), "%s", err);
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--on=1"), ERPQ_E_ARG);
  setenv("T_COUNT", "zero", 1);
  cr_assert_eq(parse(&a, err, sizeof err, 0), ERPQ_E_ARG);
  cr_assert(strstr(err, "T_COUNT"), "the variable is named: %s", err);
  cr_assert_null(a);
  clear_env();
}

Test(args, secrets_from_files) {
  clear_env();
  char path[] = "/tmp/erpq-secret-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, "s3cr3t\n", 7), 7);
  close(fd);
  setenv("T_SECRET_FILE", path, 1);
  erpq_args *a = NULL;
  char err[256];
  cr_assert_eq(parse(&a, err, sizeof err, 0), 0, "%s", err);
  cr_assert_str_eq(erpq_args_str(a, "secret"), "s3cr3t", "one trailing newline dropped");
  cr_assert_str_eq(erpq_args_origin(a, "secret"), "T_SECRET_FILE");
  erpq_args_free(a);
  /* The variable itself wins over the file; a missing file is an error. */
  setenv("T_SECRET", "direct", 1);
  cr_assert_eq(parse(&a, err, sizeof err, 0), 0, "%s", err);
  cr_assert_str_eq(erpq_args_str(a, "secret"), "direct");
  erpq_args_free(a);
  unsetenv("T_SECRET");
  unlink(path);
  cr_assert_eq(parse(&a, err, sizeof err, 0), ERPQ_E_ARG);
  cr_assert(strstr(err, "T_SECRET_FILE") && strstr(err, path), "%s", err);
  clear_env();
}

/* ---- Queue bindings ---------------------------------------------------------------- */

Test(bindings, specs_defaults_and_merges) {
  erpq_bindings b;
  erpq_bindings_init(&b, CAT);
  char err[256];
  cr_assert_eq(erpq_bindings_add(&b, "sms:3", NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_add(&b, "acc:4", NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_add(&b, "acc", "gamma", err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_add(&b, "x:y:5@beta", NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_check(&b, err, sizeof err), 0, "%s", err);
  const erpq_binding *q = erpq_bindings_find(&b, "sms");
  cr_assert(q && q->concurrency == 3 && q->nfam == 1 && !strcmp(q->fam[0]->name, "beta"));
  q = erpq_bindings_find(&b, "acc");
  cr_assert(q && q->concurrency == 4 && q->nfam == 1 && !strcmp(q->fam[0]->name, "gamma"),
            "merged: concurrency of the first, family of the second");
  q = erpq_bindings_find(&b, "x:y");
  cr_assert(q && q->concurrency == 5, "the last colon starts the concurrency");
  cr_assert_eq(erpq_binding_family_of(erpq_bindings_find(&b, "acc"), "tally"), &CAT[2]);
  cr_assert_null(erpq_binding_family_of(erpq_bindings_find(&b, "acc"), "send"));
  /* Two explicit concurrencies that differ. */
  cr_assert_eq(erpq_bindings_add(&b, "acc:5", NULL, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "acc") && strstr(err, "4") && strstr(err, "5"), "%s", err);
  erpq_bindings_free(&b);
}

Test(bindings, refusals) {
  erpq_bindings b;
  erpq_bindings_init(&b, CAT);
  char err[256];
  cr_assert_eq(erpq_bindings_add(&b, "q@nosuch", NULL, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "nosuch") && strstr(err, "alpha, beta, gamma"), "%s", err);
  cr_assert_eq(erpq_bindings_add(&b, ":3", NULL, err, sizeof err), ERPQ_E_ARG);
  cr_assert_eq(erpq_bindings_add(&b, "q:0", NULL, err, sizeof err), ERPQ_E_ARG);
  cr_assert_eq(erpq_bindings_add(&b, "q@", NULL, err, sizeof err), ERPQ_E_ARG);
  /* A queue no family serves: refused at check, with a hint. */
  cr_assert_eq(erpq_bindings_add(&b, "orphan:2", NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_check(&b, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "orphan") && strstr(err, "orphan@FAMILY"), "%s", err);
  erpq_bindings_free(&b);
  /* A job name served by two families on one queue names both. */
  erpq_bindings_init(&b, CAT);
  cr_assert_eq(erpq_bindings_add(&b, "both@alpha,beta", NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_check(&b, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "'send'") && strstr(err, "'alpha'") && strstr(err, "'beta'"), "%s", err);
  erpq_bindings_free(&b);
  /* mail defaults to alpha and gamma: different names, fine. */
  erpq_bindings_init(&b, CAT);
  cr_assert_eq(erpq_bindings_add(&b, "mail", NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_check(&b, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_bindings_find(&b, "mail")->nfam, 2);
  erpq_bindings_free(&b);
}

Test(bindings, env_lists) {
  erpq_bindings b;
  erpq_bindings_init(&b, CAT);
  char err[256];
  cr_assert_eq(erpq_bindings_add_list(&b, "a@alpha,gamma,b:2@beta; c:3@gamma  d@beta", NULL, err,
                                      sizeof err),
               0, "%s", err);
  cr_assert_eq(b.n, 4);
  const erpq_binding *q = erpq_bindings_find(&b, "a");
  cr_assert(q && q->nfam == 2, "a comma then a family name continues the @ list");
  q = erpq_bindings_find(&b, "b");
  cr_assert(q && q->concurrency == 2 && q->nfam == 1);
  cr_assert(erpq_bindings_find(&b, "c") && erpq_bindings_find(&b, "d"));
  erpq_bindings_free(&b);
  erpq_bindings_init(&b, CAT);
  cr_assert_eq(erpq_bindings_add_list(&b, "x:2,y:3", "beta", err, sizeof err), 0, "%s", err);
  cr_assert_eq(b.n, 2);
  cr_assert_eq(erpq_bindings_find(&b, "y")->fam[0], &CAT[1]);
  erpq_bindings_free(&b);
}

/* ---- Family registration ----------------------------------------------------------- */

static int h_ok(erpq_jobctx *c, const json_t *d, json_t **r, char *e, size_t el) {
  (void)c, (void)d, (void)r, (void)e, (void)el;
  return 0;
}

static int inits;
static int f_init(void **ctx, const erpq_family_env *env, char *err, size_t errlen) {
  (void)err, (void)errlen;
  inits++;
  *ctx = (void *)env->meta->name;
  return 0;
}

static const erpq_family_job alpha_h[] = {{"send", h_ok}, {"report", h_ok}, {NULL, NULL}};
static const erpq_family_job beta_h[] = {{"send", h_ok}, {NULL, NULL}};
static const erpq_family_job gamma_h[] = {{"tally", h_ok}, {NULL, NULL}};
static const erpq_family_job alpha_missing[] = {{"send", h_ok}, {NULL, NULL}};
static const erpq_family_job alpha_extra[] = {
    {"send", h_ok}, {"report", h_ok}, {"typo", h_ok}, {NULL, NULL}};

static int star_bind(void *ctx, erpq_binder *b, char *err, size_t errlen) {
  (void)err, (void)errlen;
  int rc = erpq_binder_handle(b, "tally", h_ok, ctx);
  return rc ? rc : erpq_binder_handle(b, "*", h_ok, ctx);
}

static int star_bind_alpha(void *ctx, erpq_binder *b, char *err, size_t errlen) {
  (void)err, (void)errlen;
  int rc = erpq_binder_handle(b, "send", h_ok, ctx);
  if (!rc) rc = erpq_binder_handle(b, "report", h_ok, ctx);
  return rc ? rc : erpq_binder_handle(b, "*", h_ok, ctx);
}

static const erpq_family F_ALPHA = {.name = "alpha", .jobs = alpha_h, .init = f_init};
static const erpq_family F_BETA = {.name = "beta", .jobs = beta_h, .init = f_init, .threads = 2};
static const erpq_family F_GAMMA = {.name = "gamma", .jobs = gamma_h, .init = f_init};
static const erpq_family F_GAMMA_STAR = {.name = "gamma", .bind = star_bind, .init = f_init};

/* The registry borrows the schemas: finish() frees them after it. */
static erpq_schemas *g_schemas;

static int start(const erpq_family *const *fams, const char *spec, erpq_registry *reg,
                 erpq_familyset **set, char *err, size_t errlen) {
  erpq_bindings b;
  erpq_bindings_init(&b, CAT);
  erpq_registry_init(reg);
  int rc = erpq_schemas_load(&g_schemas, CAT, NULL, err, errlen);
  if (!rc) rc = erpq_bindings_add_list(&b, spec, NULL, err, errlen);
  if (!rc) rc = erpq_bindings_check(&b, err, errlen);
  if (!rc) rc = erpq_familyset_start(set, fams, &b, NULL, g_schemas, "", reg, err, errlen);
  erpq_bindings_free(&b);
  return rc;
}

static void finish(erpq_registry *reg, erpq_familyset *set) {
  erpq_familyset_free(set);
  erpq_registry_free(reg);
  erpq_schemas_free(g_schemas);
  g_schemas = NULL;
}

Test(familyset, registers_checks_and_pools) {
  const erpq_family *fams[] = {&F_ALPHA, &F_BETA, &F_GAMMA, NULL};
  erpq_registry reg;
  erpq_familyset *set = NULL;
  char err[512];
  inits = 0;
  cr_assert_eq(start(fams, "mail:3 sms:2", &reg, &set, err, sizeof err), 0, "%s", err);
  cr_assert_eq(inits, 3, "alpha and gamma (mail) and beta (sms) are initialised");
  const erpq_handler *h = erpq_registry_find(&reg, "mail", "send");
  cr_assert(h && !strcmp(h->family, "alpha") && h->schema, "with the job's compiled schema");
  h = erpq_registry_find(&reg, "mail", "tally");
  cr_assert(h && !strcmp(h->family, "gamma"));
  cr_assert_null(erpq_registry_find(&reg, "sms", "report"));
  h = erpq_registry_find(&reg, "sms", "send");
  cr_assert(h && !strcmp(h->family, "beta") && h->userdata && !strcmp(h->userdata, "beta"));
  /* One pool per family; beta's has a fixed size. */
  cr_assert_eq(reg.npools, 4, "the default pool and three families");
  cr_assert_eq(reg.pools[h->pool].threads, 2);
  finish(&reg, set);
  /* A family serving nothing is not initialised. */
  inits = 0;
  cr_assert_eq(start(fams, "sms", &reg, &set, err, sizeof err), 0, "%s", err);
  cr_assert_eq(inits, 1);
  finish(&reg, set);
}

Test(familyset, drift_and_collisions) {
  erpq_registry reg;
  erpq_familyset *set = NULL;
  char err[512];
  const erpq_family missing = {.name = "alpha", .jobs = alpha_missing};
  const erpq_family *f1[] = {&missing, NULL};
  cr_assert_eq(start(f1, "mail@alpha", &reg, &set, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "no handler for its job 'report'") && strstr(err, "alpha/report.json"), "%s", err);
  finish(&reg, NULL);
  const erpq_family extra = {.name = "alpha", .jobs = alpha_extra};
  const erpq_family *f2[] = {&extra, NULL};
  cr_assert_eq(start(f2, "mail@alpha", &reg, &set, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "'typo'") && strstr(err, "no schema"), "%s", err);
  finish(&reg, NULL);
  /* A catch-all: takes any other name on its queue. */
  const erpq_family *f3[] = {&F_ALPHA, &F_BETA, &F_GAMMA_STAR, NULL};
  cr_assert_eq(start(f3, "t@gamma", &reg, &set, err, sizeof err), 0, "%s", err);
  cr_assert(erpq_registry_find(&reg, "t", "anything"), "gamma's * takes any name");
  finish(&reg, set);
  /* Two families both registering "*" on one queue: refused, naming both. */
  const erpq_family alpha_star = {.name = "alpha", .bind = star_bind_alpha};
  const erpq_family *f5[] = {&alpha_star, &F_BETA, &F_GAMMA_STAR, NULL};
  cr_assert_eq(start(f5, "t@alpha,gamma", &reg, &set, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "'*'") && strstr(err, "'alpha'") && strstr(err, "'gamma'"), "%s", err);
  finish(&reg, NULL);
  /* A family in the catalog without C code. */
  const erpq_family *f4[] = {&F_ALPHA, NULL};
  cr_assert_eq(start(f4, "sms", &reg, &set, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "'beta'") && strstr(err, "not linked"), "%s", err);
  finish(&reg, NULL);
}

/* ---- Schemas and the roles-file drift check ---------------------------------------- */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

Test(schemas, builtin_and_override_dir) {
  erpq_schemas *s = NULL;
  char err[512];
  cr_assert_eq(erpq_schemas_load(&s, CAT, NULL, err, sizeof err), 0, "%s", err);
  const erpq_schema *alpha_send = erpq_schemas_get(s, "alpha", "send");
  cr_assert(alpha_send && erpq_schemas_get(s, "beta", "send") != alpha_send,
            "the same job name in two families has two schemas");
  json_t *bad = json_pack("{s:s}", "n", "x");
  char *why = erpq_schemas_problems(alpha_send, bad);
  cr_assert(why && strstr(why, "/data/n"), "%s", why ? why : "(valid)");
  free(why);
  cr_assert_null(erpq_schemas_problems(erpq_schemas_get(s, "beta", "send"), bad));
  json_decref(bad);
  erpq_schemas_free(s);
  /* An override directory must hold every job's file. */
  char dir[] = "/tmp/erpq-schemas-XXXXXX";
  cr_assert(mkdtemp(dir));
  char p[512];
  const char *fams[] = {"alpha", "beta", "gamma"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, fams[i]);
    mkdir(p, 0700);
  }
  snprintf(p, sizeof p, "%s/alpha/send.json", dir);
  write_file(p, S_OBJ);
  snprintf(p, sizeof p, "%s/alpha/report.json", dir);
  write_file(p, S_ANY);
  snprintf(p, sizeof p, "%s/beta/send.json", dir);
  write_file(p, S_ANY);
  cr_assert_eq(erpq_schemas_load(&s, CAT, dir, err, sizeof err), -ENOENT);
  cr_assert(strstr(err, "gamma/tally.json") && strstr(err, "missing"), "%s", err);
  snprintf(p, sizeof p, "%s/gamma/tally.json", dir);
  write_file(p, "{\"type\": ");
  cr_assert_eq(erpq_schemas_load(&s, CAT, dir, err, sizeof err), ERPQ_E_JSON);
  cr_assert(strstr(err, "gamma/tally.json"), "%s", err);
  write_file(p, "{\"type\": \"nonsense\"}");
  cr_assert_eq(erpq_schemas_load(&s, CAT, dir, err, sizeof err), ERPQ_E_ARG);
  write_file(p, S_ANY);
  cr_assert_eq(erpq_schemas_load(&s, CAT, dir, err, sizeof err), 0, "%s", err);
  erpq_schemas_free(s);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

Test(jobtypes, family_queues_external_queues_and_drift) {
  erpq_schemas *s = NULL;
  char err[512];
  cr_assert_eq(erpq_schemas_load(&s, CAT, NULL, err, sizeof err), 0, "%s", err);
  erpq_bindings b;
  erpq_bindings_init(&b, CAT);
  cr_assert_eq(erpq_bindings_add(&b, "acc@gamma", NULL, err, sizeof err), 0, "%s", err);
  json_t *pq = json_pack("{s:[s,s], s:[s,s,s]}", "node-q", "tally", "free", "mail", "send",
                         "report", "tally");
  erpq_jobtypes *t = NULL;
  cr_assert_eq(erpq_jobtypes_build(&t, &b, s, pq, err, sizeof err), 0, "%s", err);
  const erpq_schema *schema;
  const char *fam;
  cr_assert(erpq_jobtypes_lookup(t, "mail", "send", &schema, &fam));
  cr_assert(schema && !strcmp(fam, "alpha"));
  cr_assert(erpq_jobtypes_lookup(t, "acc", "tally", NULL, &fam) && !strcmp(fam, "gamma"));
  cr_assert(!erpq_jobtypes_lookup(t, "acc", "send", NULL, NULL));
  /* An external queue: a name one family owns gets its schema. */
  cr_assert(erpq_jobtypes_lookup(t, "node-q", "tally", &schema, &fam) && schema && !strcmp(fam, "gamma"));
  cr_assert(erpq_jobtypes_lookup(t, "node-q", "free", &schema, &fam) && !schema && !fam);
  cr_assert(erpq_jobtypes_queue_known(t, "tallies") && !erpq_jobtypes_queue_known(t, "nope"));
  erpq_jobtypes_free(t);
  json_decref(pq);
  /* The roles file lists a family queue with other names: refused. */
  pq = json_pack("{s:[s]}", "mail", "send");
  cr_assert_eq(erpq_jobtypes_build(&t, &b, s, pq, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "'mail'") && strstr(err, "report"), "%s", err);
  json_decref(pq);
  erpq_bindings_free(&b);
  erpq_schemas_free(s);
}

/* ---- The data-path rule ------------------------------------------------------------ */

Test(datapath, override_used_as_given_or_refused) {
  char out[4096], err[512];
  cr_assert_eq(erpq_datapath("roles.json", "/etc/hostname", "--roles", out, sizeof out, err,
                             sizeof err),
               0, "%s", err);
  cr_assert_str_eq(out, "/etc/hostname");
  cr_assert_eq(erpq_datapath("roles.json", "/nonexistent/roles.json", "ERPQ_ROLES_FILE", out,
                             sizeof out, err, sizeof err),
               -ENOENT);
  cr_assert(strstr(err, "ERPQ_ROLES_FILE") && strstr(err, "/nonexistent/roles.json"), "%s", err);
  /* Without an override: <bin>/../share/erpq. The test binary lives in
   * <build>/tests, so its data directory is <build>/share/erpq, which the
   * build stages; a file that is not there names every place looked at. */
  cr_assert_eq(erpq_datapath("roles.json", NULL, NULL, out, sizeof out, err, sizeof err), 0, "%s",
               err);
  cr_assert(strstr(out, "/share/erpq/roles.json"), "%s", out);
  cr_assert_eq(erpq_datapath("no-such-file", NULL, "--x", out, sizeof out, err, sizeof err),
               -ENOENT);
  cr_assert(strstr(err, "share/erpq/no-such-file") && strstr(err, "--x"), "%s", err);
}
