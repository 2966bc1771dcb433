/*
 * mime_test_msgs.h - sample messages shared by the MIME tests (the parse
 * test against Python's email package and the SMTP test against maildev).
 *
 * mt_sample() fills an erpq_mime_msg for one of the named samples; the
 * strings and attachment bytes are static or owned by the mt_sample (free
 * with mt_sample_free). mt_expect() describes a message's INPUTS as the
 * JSON that tests/mime_check.py and tests/maildev_check.py compare with.
 */
#ifndef MIME_TEST_MSGS_H
#define MIME_TEST_MSGS_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_mime.h"

typedef struct mt_sample {
  erpq_mime_msg m;
  erpq_mime_addr to[16], cc[4], reply_to;
  erpq_mime_header headers[4];
  erpq_mime_attachment att[4];
  char *owned[40]; /* freed by mt_sample_free */
  size_t nowned;
  const char *types[12]; /* expected content types, walk() order */
  size_t ntypes;
  const char *label;
} mt_sample;

enum { MT_FULL, MT_TEXT_ASCII, MT_LONG_HINDI, MT_LONG_QP, MT_HTML_ONLY, MT_FOLDING, MT_COUNT };

/* Builds sample `which`; tmpdir is where file attachments are written. */
void mt_sample_make(mt_sample *s, int which);
void mt_sample_free(mt_sample *s);

/* The expectation object for tests/mime_check.py. */
json_t *mt_expect(const mt_sample *s);

/* Writes the built message to a temporary file (path malloc'ed). */
char *mt_build_to_file(const erpq_mime_msg *m);

#endif
