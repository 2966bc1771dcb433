#include <jansson.h>
#include <stdint.h>
int erpq__repeat_first(const char *name, const json_t *opts, int64_t now_ms, json_t **next_opts, char **repeat_key, int64_t *next_ms, char *err, size_t errlen);
int erpq__repeat_first(const char *name, const json_t *opts, int64_t now_ms, json_t **next_opts, char **repeat_key, int64_t *next_ms, char *err, size_t errlen) { (void)name;(void)opts;(void)now_ms;(void)next_opts;(void)repeat_key;(void)next_ms;(void)err;(void)errlen; return -95; }
