/* erpq_fees_cli.c - `erpq-worker migrate` and `erpq-worker seed-demo`. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "erpq_datapath.h"
#include "erpq_err.h"
#include "fees/erpq_fees.h"
#include "fees/erpq_fees_internal.h"
#include "erpq_mysql.h"

/* ---- Migrations ------------------------------------------------------------------ */

static int is_migration_name(const char *n) {
  size_t len = strlen(n);
  if (len < 10 || strcmp(n + len - 4, ".sql")) return 0;
  for (int i = 0; i < 4; i++)
    if (n[i] < '0' || n[i] > '9') return 0;
  if (n[4] != '_') return 0;
  for (size_t i = 5; i < len - 4; i++)
    if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '-'))
      return 0;
  return 1;
}

static int filter_sql(const struct dirent *d) { return is_migration_name(d->d_name); }

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = '\0';
    *len = (size_t)n;
  }
  return buf;
}

static void sha256_hex(const char *data, size_t len, char out[65]) {
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs a multi-statement script and drains every result. */
static int run_script(MYSQL *m, const char *sql, size_t len, char *err, size_t errlen) {
  if (mysql_real_query(m, sql, len))
    return erpq_fail(err, errlen, -(int)mysql_errno(m), "%s", mysql_error(m));
  for (;;) {
    MYSQL_RES *r = mysql_store_result(m);
    if (r) mysql_free_result(r);
    int st = mysql_next_result(m);
    if (st == -1) return 0;
    if (st > 0) return erpq_fail(err, errlen, -(int)mysql_errno(m), "%s", mysql_error(m));
  }
}

int erpq_fees_migrate(MYSQL *m, const char *dir, int verbose, char *err, size_t errlen) {
  int rc = erpq_mysql_exec(m,
                           "CREATE TABLE IF NOT EXISTS schema_migrations ("
                           " version INT UNSIGNED NOT NULL PRIMARY KEY,"
                           " name VARCHAR(255) NOT NULL,"
                           " checksum CHAR(64) NOT NULL,"
                           " applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
                           " duration_ms INT UNSIGNED NOT NULL DEFAULT 0"
                           ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
                           err, errlen);
  if (rc) return rc;
  /* One migrator at a time per database. */
  int64_t got = 0;
  int found = 0;
  rc = erpq_mysql_i64(m, "SELECT GET_LOCK(CONCAT('erpq.migrate.', DATABASE()), 60)", NULL, 0, &got, &found, err, errlen);
  if (rc) return rc;
  if (got != 1) return erpq_fail(err, errlen, ERPQ_E_TIMEOUT, "another migration holds the lock for 60 s");

  struct dirent **ents = NULL;
  int n = scandir(dir, &ents, filter_sql, alphasort);
  if (n < 0) {
    rc = erpq_fail(err, errlen, -errno, "cannot read migrations directory %s: %s", dir, strerror(errno));
    goto out;
  }
  int applied_now = 0, already = 0;
  for (int i = 0; i < n && !rc; i++) {
    const char *name = ents[i]->d_name;
    int version = atoi(name);
    if (i > 0 && atoi(ents[i - 1]->d_name) == version) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "two migrations numbered %04d: %s and %s", version,
                     ents[i - 1]->d_name, name);
      break;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len = 0;
    char *sql = read_file(path, &len);
    if (!sql) {
      rc = erpq_fail(err, errlen, -EIO, "cannot read %s", path);
      break;
    }
    char sum[65];
    sha256_hex(sql, len, sum);
    /* The recorded checksum, if applied (a CHAR(64) column read as text). */
    char q[128];
    snprintf(q, sizeof q, "SELECT checksum FROM schema_migrations WHERE version = %d", version); /* an int from a file name we checked */
    if (mysql_query(m, q)) {
      rc = erpq_fail(err, errlen, -(int)mysql_errno(m), "%s", mysql_error(m));
      free(sql);
      break;
    }
    MYSQL_RES *res = mysql_store_result(m);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row) {
      if (strcmp(row[0], sum))
        rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                       "migration %s was changed after it was applied (recorded sha256 %s, file now %s); "
                       "restore it and put the change in a new migration",
                       name, row[0], sum);
      else
        already++;
      mysql_free_result(res);
      free(sql);
      continue;
    }
    if (res) mysql_free_result(res);
    double t0 = now_ms();
    rc = run_script(m, sql, len, err, errlen);
    free(sql);
    if (rc) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", err);
      rc = erpq_fail(err, errlen, rc, "migration %s failed: %s", name, msg);
      break;
    }
    erpq_param p[] = {ERPQ_PI(version), ERPQ_PS(name), ERPQ_PS(sum), ERPQ_PI((int64_t)(now_ms() - t0))};
    rc = erpq_mysql_run(m, "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES (?,?,?,?)",
                        p, 4, NULL, NULL, err, errlen);
    if (!rc) {
      applied_now++;
      if (verbose) printf("migrate: applied %s (%.0f ms)\n", name, now_ms() - t0);
    }
  }
  /* Applied versions whose file is gone: not an error, but worth a word. */
  if (!rc && !mysql_query(m, "SELECT version, name FROM schema_migrations ORDER BY version")) {
    MYSQL_RES *res = mysql_store_result(m);
    MYSQL_ROW row;
    while (res && (row = mysql_fetch_row(res))) {
      int have = 0;
      for (int i = 0; i < n && !have; i++) have = atoi(ents[i]->d_name) == atoi(row[0]);
      if (!have) fprintf(stderr, "migrate: warning: %s is recorded as applied but is not in %s\n", row[1], dir);
    }
    if (res) mysql_free_result(res);
  }
  if (!rc && verbose) printf("migrate: %d applied now, %d already applied\n", applied_now, already);
  for (int i = 0; i < (n > 0 ? n : 0); i++) free(ents[i]);
  free(ents);
out:;
  char ignore[64];
  erpq_mysql_exec(m, "DO RELEASE_LOCK(CONCAT('erpq.migrate.', DATABASE()))", ignore, sizeof ignore);
  return rc;
}

/* `erpq-worker migrate [--dir DIR]`: the migrations of --dir /
 * ERPQ_MIGRATIONS_DIR, else the data directory's migrations/ (the same
 * rule as every data file: erpq_datapath.h). */
int erpq_fees_migrate_cmd(void *ctx, const erpq_family_env *env, const erpq_args *args) {
  (void)env;
  fees_ctx *fc = ctx;
  if (erpq_args_npos(args)) {
    fprintf(stderr, "erpq-worker migrate: unexpected argument '%s'\n", erpq_args_pos(args, 0));
    return 2;
  }
  char dir[PATH_MAX], err[1024] = "";
  if (erpq_datapath("migrations", erpq_args_str(args, "dir"), erpq_args_origin(args, "dir"), dir,
                    sizeof dir, err, sizeof err)) {
    fprintf(stderr, "erpq-worker migrate: %s\n", err);
    return 1;
  }
  MYSQL *m = erpq_mysql_connect(&fc->db, CLIENT_MULTI_STATEMENTS, err, sizeof err);
  if (!m) {
    fprintf(stderr, "erpq-worker migrate: %s\n", err);
    return 1;
  }
  int rc = erpq_fees_migrate(m, dir, 1, err, sizeof err);
  mysql_close(m);
  if (rc) {
    fprintf(stderr, "erpq-worker migrate: %s\n", err);
    return 1;
  }
  return 0;
}

/* ---- Demo data --------------------------------------------------------------------- */

static const char *const FIRST[] = {
    "Aarav", "Saanvi", "Vihaan", "Ananya", "Ishaan", "Diya", "Arjun", "Aadhya", "Kabir", "Myra",
    "Zoë", "José", "Chloé", "Renée", "Søren", "Łukasz", "Ayşe", "Nguyễn Văn", "Ngozi", "Oluwaseun",
    "Ананья", "Дмитрий", "李明", "王芳", "さくら", "지훈", "محمد", "فاطمة", "Siobhán", "Björn",
    "Priyā", "Rohan", "Meera", "Aditya", "Fatima", "Gurpreet", "Lakshmi", "Sebastián", "Amélie", "Kwame"};
static const char *const LAST[] = {
    "Sharma", "Patel", "Iyer", "Reddy", "Khan", "Singh", "Das", "Nair", "Mukherjee", "Fernandes",
    "Müller", "García", "Ó Briain", "Kowalski", "Yılmaz", "Nguyễn", "Okafor", "Adeyemi", "Иванова", "张",
    "田中", "김", "العلي", "D'Souza", "Gupta", "Menon", "Banerjee", "Østergaard", "Rodríguez", "Chatterjee"};
static const char *const SCHOOLS[] = {"Sunrise Public School, Pune", "विद्या निकेतन, Jaipur",
                                      "École Sainte-Marie", "Greenfield International School",
                                      "St. Xavier's Høgskole", "Al-Noor Academy الأكاديمية"};

static int seed_school(MYSQL *m, int s, int nstudents, char *err, size_t errlen) {
  char code[32], name[256];
  snprintf(code, sizeof code, "DEMO-%03d", s);
  snprintf(name, sizeof name, "%s", SCHOOLS[(s - 1) % (int)(sizeof SCHOOLS / sizeof *SCHOOLS)]);
  if (s > (int)(sizeof SCHOOLS / sizeof *SCHOOLS))
    snprintf(name + strlen(name), sizeof name - strlen(name), " (campus %d)", s);
  uint64_t school = 0, id;
  erpq_param ps[] = {ERPQ_PS(code), ERPQ_PS(name)};
  int rc = erpq_mysql_run(m, "INSERT INTO schools (code, name) VALUES (?,?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
                          ps, 2, NULL, &school, err, errlen);
  if (rc) return rc;
  static const char *const heads[][2] = {{"TUITION", "Tuition fee"}, {"ACTIVITY", "Activities & sports"},
                                         {"TRANSPORT", "Transport"}, {"LATE", "Late fee"}};
  uint64_t head[4];
  for (int h = 0; h < 4 && !rc; h++) {
    erpq_param p[] = {ERPQ_PI(school), ERPQ_PS(heads[h][0]), ERPQ_PS(heads[h][1])};
    rc = erpq_mysql_run(m, "INSERT INTO fee_heads (school_id, code, name) VALUES (?,?,?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
                        p, 3, NULL, &head[h], err, errlen);
  }
  enum { NCLASS = 20 };
  uint64_t cls[NCLASS];
  for (int c = 0; c < NCLASS && !rc; c++) {
    int grade = c / 2 + 1;
    char cname[32];
    snprintf(cname, sizeof cname, "Class %d", grade);
    erpq_param p[] = {ERPQ_PI(school), ERPQ_PS(cname), ERPQ_PS(c % 2 ? "B" : "A"), ERPQ_PI(grade)};
    rc = erpq_mysql_run(m, "INSERT INTO classes (school_id, name, section, grade, academic_year) VALUES (?,?,?,?,'2026-27')"
                        " ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)", p, 4, NULL, &cls[c], err, errlen);
    /* Two monthly structures per class: tuition by grade, activities (an odd
     * amount, so percent concessions round). */
    if (!rc) {
      erpq_param p2[] = {ERPQ_PI(school), ERPQ_PI(cls[c]), ERPQ_PI(head[0]), ERPQ_PI(250000 + 25000 * grade)};
      rc = erpq_mysql_run(m, "INSERT INTO fee_structures (school_id, class_id, fee_head_id, amount_minor, frequency, due_day)"
                          " VALUES (?,?,?,?,'monthly',10) ON DUPLICATE KEY UPDATE id = id", p2, 4, NULL, &id, err, errlen);
    }
    if (!rc) {
      erpq_param p3[] = {ERPQ_PI(school), ERPQ_PI(cls[c]), ERPQ_PI(head[1]), ERPQ_PI(45050)};
      rc = erpq_mysql_run(m, "INSERT INTO fee_structures (school_id, class_id, fee_head_id, amount_minor, frequency, due_day)"
                          " VALUES (?,?,?,?,'monthly',10) ON DUPLICATE KEY UPDATE id = id", p3, 4, NULL, &id, err, errlen);
    }
  }
  /* Students in batches of 500. */
  enum { B = 500, COLS = 9 };
  char *sql = malloc(64 * B + 512);
  if (!sql) return -ENOMEM;
  erpq_param *p = calloc(B * COLS, sizeof *p);
  char (*strs)[5][128] = calloc(B, sizeof *strs);
  for (int base = 0; !rc && base < nstudents; base += B) {
    int n = nstudents - base < B ? nstudents - base : B;
    char *q = sql;
    q += sprintf(q, "INSERT INTO students (school_id, class_id, admission_no, first_name, last_name, status,"
                    " parent_name, parent_email, parent_phone) VALUES ");
    for (int k = 0; k < n; k++) {
      int i = base + k + 1;
      const char *fn = FIRST[(i * 7) % (int)(sizeof FIRST / sizeof *FIRST)];
      const char *ln = LAST[(i * 13 + i / 40) % (int)(sizeof LAST / sizeof *LAST)];
      const char *pf = FIRST[(i * 11 + 5) % (int)(sizeof FIRST / sizeof *FIRST)];
      snprintf(strs[k][0], 128, "A%06d", i);
      snprintf(strs[k][1], 128, "%s %s", pf, ln);
      snprintf(strs[k][2], 128, "parent%d.s%d@example.org", i, s);
      snprintf(strs[k][3], 128, "+91 98%03d %05d", s % 1000, i % 100000);
      const char *status = i % 97 == 0 ? "withdrawn" : i % 40 == 0 ? "inactive" : "active";
      erpq_param *r = &p[k * COLS];
      r[0] = ERPQ_PI(school);
      r[1] = ERPQ_PI(cls[(i - 1) % NCLASS]);
      r[2] = ERPQ_PS(strs[k][0]);
      r[3] = ERPQ_PS(fn);
      r[4] = ERPQ_PS(ln);
      r[5] = ERPQ_PS(status);
      r[6] = ERPQ_PS(strs[k][1]);
      r[7] = ERPQ_PS(strs[k][2]);
      r[8] = ERPQ_PS(strs[k][3]);
      q += sprintf(q, "%s(?,?,?,?,?,?,?,?,?)", k ? "," : "");
    }
    sprintf(q, " ON DUPLICATE KEY UPDATE id = id");
    rc = erpq_mysql_run(m, sql, p, n * COLS, NULL, NULL, err, errlen);
  }
  free(sql);
  free(p);
  free(strs);
  if (rc) return rc;
  /* Concessions, by admission number n: n%10==3 25 % off tuition (sibling);
   * n%10==7 33.33 % off activities (sports scholarship); n%15==0 a fixed
   * 500.00 off tuition (staff ward), and n%30==0 also 10 % off tuition. */
  static const char *const conc[] = {
      "INSERT IGNORE INTO student_concessions (student_id, fee_head_id, kind, percent_bp, reason)"
      " SELECT s.id, h.id, 'percent', 2500, 'Sibling concession' FROM students s JOIN fee_heads h"
      " ON h.school_id = s.school_id AND h.code = 'TUITION'"
      " WHERE s.school_id = ? AND MOD(CAST(SUBSTRING(s.admission_no, 2) AS UNSIGNED), 10) = 3",
      "INSERT IGNORE INTO student_concessions (student_id, fee_head_id, kind, percent_bp, reason)"
      " SELECT s.id, h.id, 'percent', 3333, 'Sports scholarship' FROM students s JOIN fee_heads h"
      " ON h.school_id = s.school_id AND h.code = 'ACTIVITY'"
      " WHERE s.school_id = ? AND MOD(CAST(SUBSTRING(s.admission_no, 2) AS UNSIGNED), 10) = 7",
      "INSERT IGNORE INTO student_concessions (student_id, fee_head_id, kind, amount_minor, reason)"
      " SELECT s.id, h.id, 'fixed', 50000, 'Staff ward' FROM students s JOIN fee_heads h"
      " ON h.school_id = s.school_id AND h.code = 'TUITION'"
      " WHERE s.school_id = ? AND MOD(CAST(SUBSTRING(s.admission_no, 2) AS UNSIGNED), 15) = 0",
      "INSERT IGNORE INTO student_concessions (student_id, fee_head_id, kind, percent_bp, reason)"
      " SELECT s.id, h.id, 'percent', 1000, 'Merit' FROM students s JOIN fee_heads h"
      " ON h.school_id = s.school_id AND h.code = 'TUITION'"
      " WHERE s.school_id = ? AND MOD(CAST(SUBSTRING(s.admission_no, 2) AS UNSIGNED), 30) = 0"};
  for (size_t i = 0; i < sizeof conc / sizeof *conc && !rc; i++) {
    erpq_param pc[] = {ERPQ_PI(school)};
    rc = erpq_mysql_run(m, conc[i], pc, 1, NULL, NULL, err, errlen);
  }
  if (rc) return rc;
  /* April's fees through the fee run itself, then payments: every third
   * student paid in full, every seventh (n%7==1) half of the tuition. */
  fees_gen_req g = {.school = (int64_t)school, .period = "2026-04", .due = "2026-04-10", .no_outbox = 1};
  json_t *res = NULL;
  int bad_input, lost;
  rc = erpq_fees_generate(m, NULL, "seed-demo", &g, &res, &bad_input, &lost, err, errlen);
  json_decref(res);
  if (rc) return rc;
  static const char *const pay[] = {
      "INSERT IGNORE INTO payments (fee_id, student_id, amount_minor, method, external_ref, paid_at)"
      " SELECT f.id, f.student_id, f.amount_minor, ELT(1 + MOD(f.id, 4), 'upi', 'cash', 'card', 'bank_transfer'),"
      " CONCAT('DEMO-', f.school_id, '-', f.id), '2026-04-08 10:30:00' FROM fees f"
      " WHERE f.school_id = ? AND f.period = '2026-04' AND MOD(f.student_id, 3) = 0 AND f.amount_minor > 0",
      "INSERT IGNORE INTO payments (fee_id, student_id, amount_minor, method, external_ref, paid_at)"
      " SELECT f.id, f.student_id, f.amount_minor DIV 2, 'cheque', CONCAT('DEMO-', f.school_id, '-', f.id, '-P'),"
      " '2026-04-09 12:00:00' FROM fees f JOIN fee_structures fs ON fs.id = f.fee_structure_id"
      " JOIN fee_heads h ON h.id = fs.fee_head_id AND h.code = 'TUITION'"
      " WHERE f.school_id = ? AND f.period = '2026-04' AND MOD(f.student_id, 7) = 1 AND MOD(f.student_id, 3) <> 0"
      " AND f.amount_minor > 1",
      "UPDATE fees f JOIN (SELECT fee_id, SUM(amount_minor) AS paid FROM payments GROUP BY fee_id) p ON p.fee_id = f.id"
      " SET f.paid_minor = p.paid, f.status = IF(p.paid >= f.amount_minor, 'paid', 'partially_paid')"
      " WHERE f.school_id = ? AND f.period = '2026-04'"};
  for (size_t i = 0; i < sizeof pay / sizeof *pay && !rc; i++) {
    erpq_param pc[] = {ERPQ_PI(school)};
    rc = erpq_mysql_run(m, pay[i], pc, 1, NULL, NULL, err, errlen);
  }
  return rc;
}

int erpq_fees_seed_cmd(void *ctx, const erpq_family_env *env, const erpq_args *args) {
  (void)env;
  fees_ctx *fc = ctx;
  long students = (long)erpq_args_int(args, "students", 200);
  long schools = (long)erpq_args_int(args, "schools", 1);
  if (erpq_args_npos(args)) {
    fprintf(stderr, "erpq-worker seed-demo: unexpected argument '%s'\n", erpq_args_pos(args, 0));
    return 2;
  }
  char err[1024] = "";
  MYSQL *m = erpq_mysql_connect(&fc->db, 0, err, sizeof err);
  if (!m) {
    fprintf(stderr, "erpq-worker seed-demo: %s\n", err);
    return 1;
  }
  int rc = 0;
  for (int s = 1; s <= schools && !rc; s++) {
    double t0 = now_ms();
    rc = seed_school(m, s, (int)students, err, sizeof err);
    if (!rc) printf("seed-demo: school DEMO-%03d with %ld students (%.0f ms)\n", s, students, now_ms() - t0);
  }
  mysql_close(m);
  if (rc) {
    fprintf(stderr, "erpq-worker seed-demo: %s%s\n", err,
            strstr(err, "doesn't exist") ? " (run `erpq-worker migrate` first)" : "");
    return 1;
  }
  return 0;
}
