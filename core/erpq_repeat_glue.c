#include <jansson.h>
#include <stdint.h>
int erpq__repeat_first(const char *name, const json_t *opts, int64_t now_ms, json_t **next_opts, char **repeat_key, int64_t *next_ms, char *err, size_t errlen);
int erpq__repeat_first(const char *name, const json_t *opts, int64_t now_ms, json_t **next_opts, char **repeat_key, int64_t *next_ms, char *err, size_t errlen) { (void)name;(void)opts;(void)now_ms;(void)next_opts;(void)repeat_key;(void)next_ms;(void)err;(void)errlen; return -95; }
#include "erpq_bull.h"
int erpq__repeat_next_job(const erpq_job *job, int64_t now_ms, erpq_newjob *out, char *err, size_t errlen);
int erpq__repeat_next_job(const erpq_job *job, int64_t now_ms, erpq_newjob *out, char *err, size_t errlen) { (void)job;(void)now_ms;(void)out;(void)err;(void)errlen; return -95; }
