/*
 * bench_templates.c - renders per second of the shipped fee-reminder email
 * (subject, txt and html: one render = all three parts, strict, through
 * erpq_templates_render_email).
 *
 *   erpq-mustache-bench [TEMPLATES_DIR] [SECONDS] [THREADS]
 *
 * Defaults: ./templates, 3 seconds, 1 thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_templates.h"
#include "erpq_util.h"

static erpq_templates *store;
static json_t *vars;
static double seconds = 3;

static void *run(void *arg) {
  long *count = arg;
  char err[256];
  int64_t end = erpq_mono_ms() + (int64_t)(seconds * 1000);
  while (erpq_mono_ms() < end) {
    for (int i = 0; i < 100; i++) {
      char *sub, *txt, *html;
      if (erpq_templates_render_email(store, "fee-reminder", "en", vars, &sub, &txt, &html, err,
                                      sizeof err)) {
        fprintf(stderr, "render: %s\n", err);
        exit(1);
      }
      free(sub), free(txt), free(html);
    }
    *count += 100;
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "templates";
  if (argc > 2)
    seconds = atof(argv[2]);
  int threads = argc > 3 ? atoi(argv[3]) : 1;
  if (threads < 1 || threads > 64)
    threads = 1;
  char err[512];
  if (erpq_templates_load(dir, NULL, NULL, &store, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  vars = json_pack(
      "{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "schoolName", "Green Valley Public School",
      "parentName", "Mrs. O'Brien", "studentName", "Aarav Sharma", "className", "Class 5 B",
      "outstanding", "Rs 12,500.00", "oldestDueDate", "15 Jan 2025", "overdueCount", 2, "payUrl",
      "https://pay.example.in/f/8K2QX7", "unsubscribeUrl", "https://erp.example.in/u/abc?x=1&y=2");
  pthread_t th[64];
  long counts[64] = {0};
  struct timespec c0, c1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  int64_t t0 = erpq_mono_ms();
  for (int i = 0; i < threads; i++)
    pthread_create(&th[i], NULL, run, &counts[i]);
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += counts[i];
  }
  double el = (double)(erpq_mono_ms() - t0) / 1000.0;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
  char *sub, *txt, *html;
  erpq_templates_render_email(store, "fee-reminder", "en", vars, &sub, &txt, &html, err,
                              sizeof err);
  printf("fee-reminder email (subject %zu + txt %zu + html %zu bytes), %d thread(s): %ld renders "
         "in %.2f s = %.0f renders/s; %.2f CPU s = %.0f renders per CPU second (%.2f us)\n",
         strlen(sub), strlen(txt), strlen(html), threads, total, el, (double)total / el, cpu,
         (double)total / cpu, cpu * 1e6 / (double)total);
  free(sub), free(txt), free(html);
  json_decref(vars);
  erpq_templates_free(store);
  return 0;
}
