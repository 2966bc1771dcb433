/*
 * test_sigv4.c - AWS Signature Version 4 (lib/s3/erpq_sigv4).
 *
 * Part 1: the worked examples AWS publishes, with every expected string
 * copied from AWS's text, not computed by our code:
 *   - "Signature Calculations for the Authorization Header: Transferring
 *     Payload in a Single Chunk (AWS Signature Version 4)", section
 *     "Examples: Signature Calculations": GET Object (Range), PUT Object
 *     (test$file.text), GET Bucket Lifecycle, Get Bucket (List Objects);
 *     https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 *   - "Authenticating Requests: Using Query Parameters (AWS Signature
 *     Version 4)", section "An Example" (presigned GET of test.txt);
 *     https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
 * All use AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,
 * examplebucket, us-east-1 and Fri, 24 May 2013 00:00:00 GMT.
 *
 * Part 2: a differential test. Presigned URLs for many keys, file names,
 * both addressing styles, with and without a session token, from our code
 * and from Debian's python3-botocore (tests/presign_botocore.py, fixed
 * clock) must be equal byte for byte.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_sigv4.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST "examplebucket.s3.amazonaws.com"
#define WHEN "20130524T000000Z"
#define MAY24 1369353600LL /* 2013-05-24T00:00:00Z */

static const erpq_sigv4_cred CRED = {AK, SK, NULL, "us-east-1", "s3"};

/* Checks one header-signed example end to end: canonical request, string
 * to sign, signature and Authorization header. */
static void check_example(const erpq_sigv4_req *r, const char *want_canonical, const char *want_sts,
                          const char *want_sig) {
  erpq_buf canon = {0}, names = {0}, sts = {0}, auth = {0};
  cr_assert_eq(erpq_sigv4_canonical_request(r, &canon, &names), 0);
  cr_assert_str_eq(canon.s, want_canonical);
  char scope[128];
  cr_assert_eq(erpq_sigv4_scope(WHEN, "us-east-1", "s3", scope, sizeof scope), 0);
  cr_assert_str_eq(scope, "20130524/us-east-1/s3/aws4_request");
  erpq_sigv4_string_to_sign(WHEN, scope, canon.s, &sts);
  cr_assert_str_eq(sts.s, want_sts);
  unsigned char key[32];
  char sig[65];
  erpq_sigv4_signing_key(SK, "20130524", "us-east-1", "s3", key);
  erpq_sigv4_signature(key, sts.s, sig);
  cr_assert_str_eq(sig, want_sig);
  cr_assert_eq(erpq_sigv4_authorization(&CRED, r, WHEN, &auth), 0);
  char want_auth[512];
  snprintf(want_auth, sizeof want_auth,
           "AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/aws4_request,"
           "SignedHeaders=%s,Signature=%s",
           names.s, want_sig);
  cr_assert_str_eq(auth.s, want_auth);
  erpq_buf_free(&canon);
  erpq_buf_free(&names);
  erpq_buf_free(&sts);
  erpq_buf_free(&auth);
}

Test(sigv4_aws, get_object_with_range) {
  erpq_sigv4_kv h[] = {{"Host", HOST},
                       {"Range", "bytes=0-9"},
                       {"x-amz-content-sha256", ERPQ_SIGV4_EMPTY_SHA256},
                       {"x-amz-date", WHEN}};
  erpq_sigv4_req r = {"GET", "/test.txt", NULL, 0, h, 4, ERPQ_SIGV4_EMPTY_SHA256};
  check_example(
      &r,
      "GET\n"
      "/test.txt\n"
      "\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n"
      "\n"
      "host;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "AWS4-HMAC-SHA256\n"
      "20130524T000000Z\n"
      "20130524/us-east-1/s3/aws4_request\n"
      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

Test(sigv4_aws, put_object_with_payload) {
  const char *body = "Welcome to Amazon S3.";
  char hash[65];
  erpq_sigv4_sha256_hex(body, strlen(body), hash);
  cr_assert_str_eq(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  /* The key test$file.text, encoded once by our object URL builder. */
  erpq_buf url = {0}, host = {0}, uri = {0};
  erpq_sigv4_target t = {"https://s3.amazonaws.com", 1, "examplebucket", "test$file.text"};
  char err[256];
  cr_assert_eq(erpq_sigv4_object_url(&t, &url, &host, &uri, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(url.s, "https://examplebucket.s3.amazonaws.com/test%24file.text");
  cr_assert_str_eq(host.s, HOST);
  erpq_sigv4_kv h[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                       {"Host", host.s},
                       {"x-amz-date", WHEN},
                       {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                       {"x-amz-content-sha256", hash}};
  erpq_sigv4_req r = {"PUT", uri.s, NULL, 0, h, 5, hash};
  check_example(
      &r,
      "PUT\n"
      "/test%24file.text\n"
      "\n"
      "date:Fri, 24 May 2013 00:00:00 GMT\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\n"
      "x-amz-storage-class:REDUCED_REDUNDANCY\n"
      "\n"
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      "AWS4-HMAC-SHA256\n"
      "20130524T000000Z\n"
      "20130524/us-east-1/s3/aws4_request\n"
      "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  erpq_buf_free(&url);
  erpq_buf_free(&host);
  erpq_buf_free(&uri);
}

Test(sigv4_aws, get_bucket_lifecycle) {
  erpq_sigv4_kv q[] = {{"lifecycle", ""}};
  erpq_sigv4_kv h[] = {
      {"host", HOST}, {"x-amz-content-sha256", ERPQ_SIGV4_EMPTY_SHA256}, {"x-amz-date", WHEN}};
  erpq_sigv4_req r = {"GET", "/", q, 1, h, 3, ERPQ_SIGV4_EMPTY_SHA256};
  check_example(
      &r,
      "GET\n"
      "/\n"
      "lifecycle=\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n"
      "\n"
      "host;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "AWS4-HMAC-SHA256\n"
      "20130524T000000Z\n"
      "20130524/us-east-1/s3/aws4_request\n"
      "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
      "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

Test(sigv4_aws, list_objects_query_sorted) {
  /* Given out of order: the canonical query string sorts by name. */
  erpq_sigv4_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}};
  erpq_sigv4_kv h[] = {
      {"x-amz-date", WHEN}, {"x-amz-content-sha256", ERPQ_SIGV4_EMPTY_SHA256}, {"host", HOST}};
  erpq_sigv4_req r = {"GET", "/", q, 2, h, 3, ERPQ_SIGV4_EMPTY_SHA256};
  check_example(
      &r,
      "GET\n"
      "/\n"
      "max-keys=2&prefix=J\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n"
      "\n"
      "host;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "AWS4-HMAC-SHA256\n"
      "20130524T000000Z\n"
      "20130524/us-east-1/s3/aws4_request\n"
      "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

Test(sigv4_aws, presigned_get) {
  /* The intermediate strings of AWS's example. */
  erpq_sigv4_kv q[] = {{"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
                       {"X-Amz-Credential", AK "/20130524/us-east-1/s3/aws4_request"},
                       {"X-Amz-Date", WHEN},
                       {"X-Amz-Expires", "86400"},
                       {"X-Amz-SignedHeaders", "host"}};
  erpq_sigv4_kv h[] = {{"host", HOST}};
  erpq_sigv4_req r = {"GET", "/test.txt", q, 5, h, 1, ERPQ_SIGV4_UNSIGNED};
  erpq_buf canon = {0}, sts = {0};
  cr_assert_eq(erpq_sigv4_canonical_request(&r, &canon, NULL), 0);
  cr_assert_str_eq(canon.s, "GET\n"
                            "/test.txt\n"
                            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                            "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-"
                            "Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
                            "host:examplebucket.s3.amazonaws.com\n"
                            "\n"
                            "host\n"
                            "UNSIGNED-PAYLOAD");
  erpq_sigv4_string_to_sign(WHEN, "20130524/us-east-1/s3/aws4_request", canon.s, &sts);
  cr_assert_str_eq(sts.s, "AWS4-HMAC-SHA256\n"
                          "20130524T000000Z\n"
                          "20130524/us-east-1/s3/aws4_request\n"
                          "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
  erpq_buf_free(&canon);
  erpq_buf_free(&sts);

  /* And the whole URL, as AWS prints it. */
  erpq_sigv4_presign p = {
      {"https://s3.amazonaws.com", 1, "examplebucket", "test.txt"}, CRED, NULL, 86400, MAY24};
  char *url = NULL, err[256];
  cr_assert_eq(erpq_sigv4_presign_url(&p, &url, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(url,
                   "https://examplebucket.s3.amazonaws.com/"
                   "test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                   "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
                   "20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
                   "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  free(url);
}

/* ---- encoding rules ------------------------------------------------------ */

static char *enc(const char *s, int keep_slash) {
  erpq_buf b = {0};
  erpq_buf_adds(&b, "");
  erpq_sigv4_uri_encode(&b, s, strlen(s), keep_slash);
  return erpq_buf_take(&b);
}

Test(sigv4_encoding, aws_rules) {
  struct {
    const char *in, *key, *query;
  } cases[] = {
      {"AZaz09-._~", "AZaz09-._~", "AZaz09-._~"},
      {"a b", "a%20b", "a%20b"},
      {"a/b/", "a/b/", "a%2Fb%2F"},
      {"1+1=2", "1%2B1%3D2", "1%2B1%3D2"},
      {"%41", "%2541", "%2541"}, /* A literal '%' is data: encoded once, never decoded. */
      {"ü", "%C3%BC", "%C3%BC"},
      {"?&#;,:@$*()'!\"", "%3F%26%23%3B%2C%3A%40%24%2A%28%29%27%21%22",
       "%3F%26%23%3B%2C%3A%40%24%2A%28%29%27%21%22"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *k = enc(cases[i].in, 1), *q = enc(cases[i].in, 0);
    cr_expect_str_eq(k, cases[i].key, "key encoding of %s", cases[i].in);
    cr_expect_str_eq(q, cases[i].query, "query encoding of %s", cases[i].in);
    free(k);
    free(q);
  }
}

Test(sigv4_encoding, header_values_trimmed_and_names_checked) {
  erpq_sigv4_kv h[] = {{"host", "h"}, {"X-Amz-Meta-A", "  two   spaces\there  "}};
  erpq_sigv4_req r = {"GET", "/k", NULL, 0, h, 2, ERPQ_SIGV4_UNSIGNED};
  erpq_buf b = {0};
  cr_assert_eq(erpq_sigv4_canonical_request(&r, &b, NULL), 0);
  cr_assert_str_eq(b.s, "GET\n/k\n\nhost:h\nx-amz-meta-a:two spaces here\n\nhost;x-amz-meta-a\n"
                        "UNSIGNED-PAYLOAD");
  erpq_buf_free(&b);
  erpq_sigv4_kv dup[] = {{"host", "h"}, {"HOST", "h"}};
  erpq_sigv4_req r2 = {"GET", "/k", NULL, 0, dup, 2, ERPQ_SIGV4_UNSIGNED};
  cr_assert_eq(erpq_sigv4_canonical_request(&r2, &b, NULL), -EINVAL);
  erpq_buf_free(&b);
  erpq_sigv4_kv bad[] = {{"ho st", "h"}};
  erpq_sigv4_req r3 = {"GET", "/k", NULL, 0, bad, 1, ERPQ_SIGV4_UNSIGNED};
  cr_assert_eq(erpq_sigv4_canonical_request(&r3, &b, NULL), -EINVAL);
  erpq_buf_free(&b);
}

Test(sigv4_encoding, object_urls_and_endpoints) {
  struct {
    const char *endpoint;
    int virt;
    const char *url, *host;
  } ok[] = {
      {"http://127.0.0.1:9000", 0, "http://127.0.0.1:9000/reports/a%20b/c.csv", "127.0.0.1:9000"},
      {"http://127.0.0.1:80/", 0, "http://127.0.0.1:80/reports/a%20b/c.csv", "127.0.0.1"},
      {"HTTPS://S3.EU-WEST-1.amazonaws.com", 1,
       "https://reports.s3.eu-west-1.amazonaws.com/a%20b/c.csv",
       "reports.s3.eu-west-1.amazonaws.com"},
      {"https://s3.example.test:443", 1, "https://reports.s3.example.test:443/a%20b/c.csv",
       "reports.s3.example.test"},
  };
  char err[256];
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    erpq_buf url = {0}, host = {0};
    erpq_sigv4_target t = {ok[i].endpoint, ok[i].virt, "reports", "a b/c.csv"};
    cr_assert_eq(erpq_sigv4_object_url(&t, &url, &host, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(url.s, ok[i].url);
    cr_expect_str_eq(host.s, ok[i].host);
    erpq_buf_free(&url);
    erpq_buf_free(&host);
  }
  const char *bad[] = {"127.0.0.1:9000", "ftp://h",    "http://h/base", "http://u:p@h",
                       "http://",        "http://h:x", "http://h?x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    erpq_buf url = {0};
    erpq_sigv4_target t = {bad[i], 0, "reports", "k"};
    cr_expect_eq(erpq_sigv4_object_url(&t, &url, NULL, NULL, err, sizeof err), -EINVAL, "%s",
                 bad[i]);
    cr_expect(strstr(err, "ERPQ") == NULL && strstr(err, "endpoint") != NULL, "%s", err);
    erpq_buf_free(&url);
  }
  erpq_buf url = {0};
  erpq_sigv4_target empty = {"http://h", 0, "reports", ""};
  cr_expect_eq(erpq_sigv4_object_url(&empty, &url, NULL, NULL, err, sizeof err), -EINVAL);
  erpq_buf_free(&url);
}

Test(sigv4_encoding, content_disposition) {
  struct {
    const char *name, *want;
  } cases[] = {
      {"Fees 2026.csv", "attachment; filename=\"Fees 2026.csv\"; filename*=UTF-8''Fees%202026.csv"},
      {"Relevé \"final\".pdf", "attachment; filename=\"Relev_ _final_.pdf\"; "
                               "filename*=UTF-8''Relev%C3%A9%20%22final%22.pdf"},
      {"a\\b%c\r\n.txt", "attachment; filename=\"a_b_c__.txt\"; filename*=UTF-8''a%5Cb%25c__.txt"},
      {"日本.xlsx", "attachment; filename=\"__.xlsx\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.xlsx"},
      {"bad\xff.csv", "attachment; filename=\"bad_.csv\"; filename*=UTF-8''bad%FF.csv"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    erpq_buf b = {0};
    erpq_sigv4_content_disposition(cases[i].name, &b);
    cr_expect_str_eq(b.s, cases[i].want);
    erpq_buf_free(&b);
  }
}

/* The X-Amz-Expires value of a URL. */
static long long expires_of(const char *url) {
  const char *p = strstr(url, "X-Amz-Expires=");
  cr_assert_not_null(p);
  return atoll(p + strlen("X-Amz-Expires="));
}

Test(sigv4_presign, expiry_clamped) {
  int64_t asked[] = {-5, 0, 1, 900, 604800, 604801, 100000000};
  long long want[] = {1, 1, 1, 900, 604800, 604800, 604800};
  for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
    erpq_sigv4_presign p = {
        {"http://127.0.0.1:9000", 0, "reports", "k"}, CRED, "k.csv", asked[i], MAY24};
    char *url = NULL, err[256];
    cr_assert_eq(erpq_sigv4_presign_url(&p, &url, err, sizeof err), 0, "%s", err);
    cr_expect_eq(expires_of(url), want[i], "asked %lld", (long long)asked[i]);
    free(url);
  }
}

Test(sigv4_presign, missing_credentials_refused) {
  erpq_sigv4_cred none = {"", SK, NULL, "us-east-1", "s3"};
  erpq_sigv4_presign p = {{"http://127.0.0.1:9000", 0, "reports", "k"}, none, NULL, 60, MAY24};
  char *url = NULL, err[256];
  cr_assert_eq(erpq_sigv4_presign_url(&p, &url, err, sizeof err), -EINVAL);
  cr_assert_null(url);
}

/* ---- differential test against botocore ---------------------------------- */

static const char *KEYS[] = {
    "reports/12/2026-01/42-fees.csv",
    "reports/12/2026-01/43-Fee report (final).xlsx",
    "a b  c",
    "ünïcödé/файл/報告.pdf",
    "plus+sign+",
    "tilde~and-dash_under.dot",
    "slash/in/key/",
    "query?x=1&y=2#frag",
    "semi;colon,comma:colon@at$dollar",
    "quote\"double'single`back",
    "percent%20literal%",
    "star*paren()bang!",
    "emoji😀/x",
    "brackets[]{}<>|^",
    "eq=amp&hash#",
    " leading and trailing ",
    "dots/./../x//y",
    "tab\there",
};
static const char *NAMES[] = {
    NULL,
    "Fees report.csv",
    "Relevé de notes – 2026.pdf",
    "quote\"name.xlsx",
    "back\\slash.csv",
    "percent%.csv",
    "日本語のレポート.pdf",
    "emoji😀.csv",
    "semi;colon=eq&amp+plus.csv",
};

struct endpoint {
  const char *url, *style, *region;
};
static const struct endpoint ENDPOINTS[] = {
    {"http://127.0.0.1:9000", "path", "us-east-1"},
    {"https://s3.eu-west-1.amazonaws.com", "virtual", "eu-west-1"},
    {"https://s3.ap-south-1.amazonaws.com", "path", "ap-south-1"},
    {"http://minio.internal:9000", "virtual", "us-east-1"},
};

Test(sigv4_presign, matches_botocore, .timeout = 120) {
  const char *src = getenv("ERPQ_SOURCE_DIR");
  cr_assert_not_null(src, "ERPQ_SOURCE_DIR is not set (run through ctest)");
  char in_path[] = "/tmp/erpq-sigv4-in-XXXXXX", out_path[] = "/tmp/erpq-sigv4-out-XXXXXX";
  int in_fd = mkstemp(in_path), out_fd = mkstemp(out_path);
  cr_assert(in_fd >= 0 && out_fd >= 0);
  close(out_fd);
  FILE *in = fdopen(in_fd, "w");
  cr_assert_not_null(in);

  /* Every key with every endpoint; file names, tokens and clocks rotate. */
  const char *tokens[] = {NULL, "FQoGZXIvYXdzEJr//////////wEaDM+token/with+slash=="};
  const int64_t clocks[] = {MAY24, 1767225599, 1700000000};
  const int64_t expiries[] = {900, 1, 604800, 3600};
  size_t ncases = 0;
  char **ours = NULL;
  for (size_t e = 0; e < sizeof ENDPOINTS / sizeof ENDPOINTS[0]; e++)
    for (size_t k = 0; k < sizeof KEYS / sizeof KEYS[0]; k++)
      for (size_t t = 0; t < 2; t++) {
        size_t n = ncases;
        const char *name = NAMES[(k + e + t) % (sizeof NAMES / sizeof NAMES[0])];
        erpq_sigv4_presign p = {
            {ENDPOINTS[e].url, strcmp(ENDPOINTS[e].style, "virtual") == 0, "reports-2026", KEYS[k]},
            {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", tokens[t],
             ENDPOINTS[e].region, "s3"},
            name,
            expiries[n % 4],
            clocks[n % 3]};
        char *url = NULL, err[256];
        cr_assert_eq(erpq_sigv4_presign_url(&p, &url, err, sizeof err), 0, "%s", err);
        ours = realloc(ours, (n + 1) * sizeof *ours);
        cr_assert_not_null(ours);
        ours[n] = url;
        json_t *c = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:I,s:I}", "endpoint", ENDPOINTS[e].url,
            "style", ENDPOINTS[e].style, "bucket", "reports-2026", "key", KEYS[k], "region",
            ENDPOINTS[e].region, "access_key", "AKIDEXAMPLE", "secret_key",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token", tokens[t], "file_name", name,
            "expires", (json_int_t)p.expires_s, "now", (json_int_t)p.now);
        cr_assert_not_null(c);
        char *line = json_dumps(c, JSON_COMPACT);
        fprintf(in, "%s\n", line);
        free(line);
        json_decref(c);
        ncases++;
      }
  cr_assert_eq(fclose(in), 0);

  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/lib/s3/tests/presign_botocore.py < %s > %s", src,
           in_path, out_path);
  cr_assert_eq(system(cmd), 0, "presign_botocore.py failed (is python3-botocore installed?)");
  FILE *out = fopen(out_path, "r");
  cr_assert_not_null(out);
  char *line = NULL;
  size_t cap = 0, i = 0;
  while (getline(&line, &cap, out) > 0) {
    cr_assert_lt(i, ncases, "botocore wrote more lines than cases");
    json_error_t je;
    json_t *v = json_loads(line, 0, &je);
    cr_assert_not_null(v, "bad line from botocore: %s", je.text);
    const char *theirs = json_string_value(json_object_get(v, "url"));
    cr_assert_not_null(theirs);
    cr_expect_str_eq(ours[i], theirs, "case %zu differs", i);
    json_decref(v);
    free(ours[i]);
    i++;
  }
  free(line);
  fclose(out);
  cr_assert_eq(i, ncases, "botocore answered %zu of %zu cases", i, ncases);
  free(ours);
  unlink(in_path);
  unlink(out_path);
}
