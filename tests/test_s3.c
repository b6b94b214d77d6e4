/* Tests for the S3 blob store backend (src/store/s3.c) against s3rver on
 * loopback (tests/aws): small and multipart writes read back byte for
 * byte, aborts that leave nothing, deletes by key and by prefix across
 * listing pages, the errors callers rely on, keys with spaces and
 * non-ASCII letters, and the URL and XML helpers as pure functions. */
#include "testutil.h"

#include "aws/aws.h"
#include "core/core.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Helpers s3.c exposes for these tests only. */
int s3_build_url(const char *endpoint, const char *bucket, int path_style, const char *key,
                 const char *query, char *out, size_t cap);
int s3_xml_next(const char **p, const char *end, const char *tag, char *out, size_t cap);

static char msg[512];
static TuEmulators emu;
static int have_emu;

#define BUCKET "audio-files"

/* ---- Pure helpers (no server) ------------------------------------------ */

static void test_url_building(void **state) {
    (void)state;
    char url[4096];
    const char *key = "uploads/j1/Voice memo 12.m4a";
    assert_int_equal(s3_build_url("http://127.0.0.1:9000", BUCKET, 1, key, NULL, url, sizeof url),
                     0);
    assert_string_equal(url, "http://127.0.0.1:9000/audio-files/uploads/j1/Voice%20memo%2012.m4a");
    assert_int_equal(
        s3_build_url("https://s3.us-east-1.amazonaws.com", BUCKET, 0, key, NULL, url, sizeof url),
        0);
    assert_string_equal(url, "https://audio-files.s3.us-east-1.amazonaws.com/uploads/j1/"
                             "Voice%20memo%2012.m4a");
    /* The bucket itself, with a query: a listing. */
    assert_int_equal(s3_build_url("https://s3.eu-west-1.amazonaws.com", BUCKET, 0, NULL,
                                  "list-type=2&prefix=a", url, sizeof url),
                     0);
    assert_string_equal(url,
                        "https://audio-files.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=a");
    assert_int_equal(
        s3_build_url("http://minio:9000", BUCKET, 1, NULL, "list-type=2", url, sizeof url), 0);
    assert_string_equal(url, "http://minio:9000/audio-files?list-type=2");
    /* Non-ASCII and reserved bytes are percent-encoded, '/' kept. */
    assert_int_equal(
        s3_build_url("http://h", "b", 1, "u/\xc3\xa9+&=.m4a", "uploads=", url, sizeof url), 0);
    assert_string_equal(url, "http://h/b/u/%C3%A9%2B%26%3D.m4a?uploads=");
    /* Too small a buffer is an error, never a truncated URL. */
    assert_int_equal(s3_build_url("http://h", "b", 1, "key", NULL, url, 10), DI_ERANGE);
}

static void test_xml(void **state) {
    (void)state;
    const char *xml =
        "<ListBucketResult xmlns=\"x\"><KeyCount>2</KeyCount>"
        "<Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;</Key></Contents>"
        "<Contents><Key>&#233;&#x263A;</Key></Contents>"
        "<IsTruncated>false</IsTruncated></ListBucketResult>";
    const char *p = xml, *end = xml + strlen(xml);
    char out[128];
    assert_int_equal(s3_xml_next(&p, end, "Key", out, sizeof out), 0);
    assert_string_equal(out, "a & b <c> \"d\" 'e'");
    assert_int_equal(s3_xml_next(&p, end, "Key", out, sizeof out), 0);
    assert_string_equal(out, "\xc3\xa9\xe2\x98\xba");
    assert_int_equal(s3_xml_next(&p, end, "Key", out, sizeof out), DI_ENOTFOUND);
    p = xml;
    assert_int_equal(s3_xml_next(&p, end, "IsTruncated", out, sizeof out), 0);
    assert_string_equal(out, "false");
    p = xml;
    assert_int_equal(s3_xml_next(&p, end, "KeyCount", out, sizeof out), 0);
    assert_string_equal(out, "2");
    /* Malformed: unclosed element, unknown entity, no ';', too small. */
    const char *bad[] = {"<Key>abc", "<Key>&nbsp;</Key>", "<Key>a &amp b</Key>", "<Key>&#;</Key>",
                         "<Key>&#x110000;</Key>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = bad[i];
        assert_true(s3_xml_next(&p, p + strlen(p), "Key", out, sizeof out) < 0);
    }
    p = "<Key>abcdef</Key>";
    assert_int_equal(s3_xml_next(&p, p + strlen(p), "Key", out, 4), DI_ERANGE);
    /* The search never runs past `end`. */
    p = "<Key>abc</Key>";
    assert_int_equal(s3_xml_next(&p, p + 10, "Key", out, sizeof out), DI_EFORMAT);

    /* Mangled answers, each in a buffer of its exact size (no 0 after it)
     * so a sanitizer build sees any read past the end. */
    DiRng rng;
    di_rng_seed(&rng, 42);
    size_t n = strlen(xml);
    for (int it = 0; it < 20000; it++) {
        size_t len = di_rng_next(&rng) % (n + 1);
        char *m = malloc(len ? len : 1);
        memcpy(m, xml, len);
        for (int k = 0; k < 4 && len; k++)
            m[di_rng_next(&rng) % len] = "<>/&;#x0Key"[di_rng_next(&rng) % 11];
        const char *q = m;
        int guard = 0;
        while (s3_xml_next(&q, m + len, it % 2 ? "Key" : "Contents", out, 1 + it % 40) !=
                   DI_ENOTFOUND &&
               q < m + len && guard++ < 100)
            ;
        free(m);
    }
}

static void test_url_options(void **state) {
    (void)state;
    Store *st = NULL;
    const char *bad[] = {
        "s3://b?part_mb=4", "s3://b?part_mb=x",   "s3://b?max_keys=0", "s3://b?path_style=maybe",
        "s3://b?bogus=1",   "s3://b/some/prefix", "s3://b%20c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(store_open(bad[i], &st, msg, sizeof msg), DI_EINVAL);
        assert_null(st);
    }
    assert_int_equal(store_open("s3://b/?path_style=0&part_mb=5&max_keys=10", &st, msg, sizeof msg),
                     0);
    store_close(st);
}

/* ---- Against s3rver ----------------------------------------------------- */

/* PUT /BUCKET through the shared request helper, as `diarist init-aws`
 * would. */
static void create_bucket(const char *bucket) {
    Aws *aws;
    assert_int_equal(aws_open(&aws, msg, sizeof msg), 0);
    char ep[512], url[1024];
    int custom = 0;
    assert_int_equal(aws_endpoint(aws, "s3", ep, sizeof ep, &custom), 0);
    assert_true(custom);
    snprintf(url, sizeof url, "%s/%s", ep, bucket);
    AwsRequest rq = {.method = "PUT", .service = "s3", .url = url};
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    assert_int_equal(aws_request(aws, &rq, &resp, msg, sizeof msg), 0);
    assert_true(resp.status == 200 || !strcmp(resp.error_code, "BucketAlreadyOwnedByYou"));
    aws_response_free(&resp);
    aws_close(aws);
}

static int setup(void **state) {
    (void)state;
    /* s3rver makes ListObjectsV2 continuation tokens with DES, which
     * Node's OpenSSL 3 only has in its legacy provider: without it every
     * truncated listing is a 500. */
    setenv("NODE_OPTIONS", "--openssl-legacy-provider", 0);
    if (tu_emulators_start("s3", &emu) != 0) return 0; /* tests skip */
    have_emu = 1;
    create_bucket(BUCKET);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_emulators_stop(&emu);
    return 0;
}

static Store *open_s3(const char *query) {
    if (!have_emu) skip();
    char url[256];
    snprintf(url, sizeof url, "s3://" BUCKET "%s", query ? query : "");
    Store *st = NULL;
    int rc = store_open(url, &st, msg, sizeof msg);
    if (rc < 0) fail_msg("store_open(%s): %s", url, msg);
    return st;
}

/* Deterministic bytes for chunk i, so a 20 MiB blob is checked without
 * holding it whole. */
static void fill_chunk(unsigned char *buf, size_t n, uint64_t i) {
    DiRng rng;
    di_rng_seed(&rng, 0x53330000 + i);
    for (size_t k = 0; k < n; k += 8) {
        uint64_t v = di_rng_next(&rng);
        memcpy(buf + k, &v, n - k < 8 ? n - k : 8);
    }
}

/* The object's Content-Type and ETag, asked of the server directly. */
static void head_raw(const char *key, char *ctype, size_t ccap, char *etag, size_t ecap) {
    Aws *aws;
    assert_int_equal(aws_open(&aws, msg, sizeof msg), 0);
    char ep[512], enc[2048], url[4096];
    assert_int_equal(aws_endpoint(aws, "s3", ep, sizeof ep, NULL), 0);
    assert_int_equal(aws_uri_encode(key, 1, enc, sizeof enc), 0);
    snprintf(url, sizeof url, "%s/%s/%s", ep, BUCKET, enc);
    AwsRequest rq = {.method = "HEAD", .service = "s3", .url = url};
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    assert_int_equal(aws_request(aws, &rq, &resp, msg, sizeof msg), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(aws_response_header(&resp, "Content-Type", ctype, ccap), 0);
    snprintf(etag, ecap, "%s", resp.etag);
    aws_response_free(&resp);
    aws_close(aws);
}

/* How many part files s3rver holds for unfinished multipart uploads in
 * BUCKET: proof that a write really went multipart. */
static int upload_parts(void) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "find '%s/s3/" BUCKET
             "/._S3rver_uploads' -type f -regex '.*/[0-9]+' 2>/dev/null | wc -l",
             tu_tmp("emulators.data"));
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

static void check_get_file(Store *st, const char *key, const void *want, size_t n) {
    const char *path = tu_tmp("got.bin");
    remove(path);
    int rc = store_get_file(st, key, path, msg, sizeof msg);
    if (rc < 0) fail_msg("get_file %s: %s", key, msg);
    size_t size = 0;
    unsigned char *got = tu_read(path, &size);
    assert_non_null(got);
    assert_int_equal(size, n);
    if (n) assert_memory_equal(got, want, n);
    free(got);
}

static void check_reader(Store *st, const char *key, const void *want, size_t n) {
    StoreReader *r;
    assert_int_equal(store_open_read(st, key, &r, msg, sizeof msg), 0);
    assert_int_equal(store_reader_size(r), n);
    unsigned char *got = malloc(n + 1);
    size_t total = 0, k;
    do {
        assert_int_equal(store_read(r, got + total, n + 1 - total, &k, msg, sizeof msg), 0);
        total += k;
    } while (k > 0 && total <= n);
    assert_int_equal(total, n);
    if (n) assert_memory_equal(got, want, n);
    free(got);
    store_reader_close(r);
}

static void test_small_roundtrip(void **state) {
    (void)state;
    Store *st = open_s3(NULL);
    const char *key = "uploads/job-small/memo.m4a";
    const char data[] = "a small blob\n";
    assert_int_equal(store_put(st, key, data, sizeof data - 1, msg, sizeof msg), 0);
    uint64_t size = 0;
    assert_int_equal(store_stat(st, key, &size, msg, sizeof msg), 0);
    assert_int_equal(size, sizeof data - 1);
    check_get_file(st, key, data, sizeof data - 1);
    check_reader(st, key, data, sizeof data - 1);

    /* The seed's content type, so its worker and ours read each other's
     * uploads alike. */
    char ctype[128], etag[256];
    head_raw(key, ctype, sizeof ctype, etag, sizeof etag);
    assert_string_equal(ctype, "binary/octet-stream");

    /* Replacing is atomic and whole; an empty blob is a blob. */
    assert_int_equal(store_put(st, key, "x", 1, msg, sizeof msg), 0);
    check_get_file(st, key, "x", 1);
    assert_int_equal(store_put(st, "uploads/job-small/empty", "", 0, msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/job-small/empty", &size, msg, sizeof msg), 0);
    assert_int_equal(size, 0);
    check_reader(st, "uploads/job-small/empty", "", 0);
    check_get_file(st, "uploads/job-small/empty", "", 0);
    assert_int_equal(store_delete_prefix(st, "uploads/job-small/", msg, sizeof msg), 0);
    store_close(st);
}

enum { CHUNK = 65536, NCHUNKS = 320 }; /* 20 MiB: four 5 MiB parts */

static void test_multipart(void **state) {
    (void)state;
    Store *st = open_s3("?part_mb=5");
    const char *key = "uploads/job-big/big.bin";
    static unsigned char buf[CHUNK];
    StoreWriter *w;
    int parts_before = upload_parts();
    assert_int_equal(store_open_write(st, key, &w, msg, sizeof msg), 0);
    for (int i = 0; i < NCHUNKS; i++) {
        fill_chunk(buf, CHUNK, (uint64_t)i);
        assert_int_equal(store_write(w, buf, CHUNK, msg, sizeof msg), 0);
        if (i == NCHUNKS / 2) { /* parts are up, yet nothing is visible */
            assert_true(upload_parts() >= parts_before + 2);
            assert_int_equal(store_stat(st, key, NULL, msg, sizeof msg), DI_ENOTFOUND);
        }
    }
    int rc = store_commit(w, msg, sizeof msg);
    if (rc < 0) fail_msg("commit: %s", msg);
    uint64_t size = 0;
    assert_int_equal(store_stat(st, key, &size, msg, sizeof msg), 0);
    assert_int_equal(size, (uint64_t)CHUNK * NCHUNKS);
    char ctype[128], etag[256];
    head_raw(key, ctype, sizeof ctype, etag, sizeof etag);
    assert_string_equal(ctype, "binary/octet-stream");
    assert_int_equal(upload_parts(), parts_before); /* completed: s3rver dropped the parts */

    /* Whole, through get_file. */
    const char *path = tu_tmp("big.bin");
    assert_int_equal(store_get_file(st, key, path, msg, sizeof msg), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char got[CHUNK];
    for (int i = 0; i < NCHUNKS; i++) {
        fill_chunk(buf, CHUNK, (uint64_t)i);
        assert_int_equal(fread(got, 1, CHUNK, f), CHUNK);
        assert_memory_equal(got, buf, CHUNK);
    }
    assert_int_equal(fgetc(f), EOF);
    fclose(f);

    /* Streamed, through a reader with an odd buffer size that straddles
     * chunk and window boundaries. */
    StoreReader *r;
    assert_int_equal(store_open_read(st, key, &r, msg, sizeof msg), 0);
    assert_int_equal(store_reader_size(r), (uint64_t)CHUNK * NCHUNKS);
    static unsigned char all[CHUNK + 1000];
    uint64_t total = 0;
    size_t have = 0;
    int chunk = 0;
    for (;;) {
        size_t k;
        assert_int_equal(store_read(r, all + have, 1000, &k, msg, sizeof msg), 0);
        if (k == 0) break;
        have += k;
        total += k;
        if (have >= CHUNK) {
            fill_chunk(buf, CHUNK, (uint64_t)chunk++);
            assert_memory_equal(all, buf, CHUNK);
            memmove(all, all + CHUNK, have - CHUNK);
            have -= CHUNK;
        }
    }
    assert_int_equal(total, (uint64_t)CHUNK * NCHUNKS);
    assert_int_equal(chunk, NCHUNKS);
    store_reader_close(r);

    /* Exactly one part is still a single PutObject: no upload started. */
    assert_int_equal(store_open_write(st, "uploads/job-big/one", &w, msg, sizeof msg), 0);
    for (int i = 0; i < 80; i++)
        assert_int_equal(store_write(w, buf, CHUNK, msg, sizeof msg), 0);
    assert_int_equal(upload_parts(), parts_before);
    assert_int_equal(store_commit(w, msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/job-big/one", &size, msg, sizeof msg), 0);
    assert_int_equal(size, 80 * CHUNK);

    assert_int_equal(store_delete_prefix(st, "uploads/job-big/", msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, key, NULL, msg, sizeof msg), DI_ENOTFOUND);
    store_close(st);
}

static void test_abort(void **state) {
    (void)state;
    Store *st = open_s3("?part_mb=5");
    static unsigned char buf[CHUNK];
    memset(buf, 7, sizeof buf);
    /* Aborted after a part went up (s3rver refuses the abort: logged). */
    StoreWriter *w;
    int parts_before = upload_parts();
    assert_int_equal(store_open_write(st, "uploads/job-abort/a.bin", &w, msg, sizeof msg), 0);
    for (int i = 0; i < 100; i++) /* 6.25 MiB */
        assert_int_equal(store_write(w, buf, CHUNK, msg, sizeof msg), 0);
    assert_int_equal(upload_parts(), parts_before + 1);
    store_abort(w);
    assert_int_equal(store_stat(st, "uploads/job-abort/a.bin", NULL, msg, sizeof msg),
                     DI_ENOTFOUND);
    /* Aborted while still in memory. */
    assert_int_equal(store_open_write(st, "uploads/job-abort/b.bin", &w, msg, sizeof msg), 0);
    assert_int_equal(store_write(w, buf, 100, msg, sizeof msg), 0);
    store_abort(w);
    assert_int_equal(store_stat(st, "uploads/job-abort/b.bin", NULL, msg, sizeof msg),
                     DI_ENOTFOUND);
    store_close(st);
}

static void test_not_found(void **state) {
    (void)state;
    Store *st = open_s3(NULL);
    const char *key = "uploads/nobody/none.m4a";
    assert_int_equal(store_stat(st, key, NULL, msg, sizeof msg), DI_ENOTFOUND);
    StoreReader *r = NULL;
    assert_int_equal(store_open_read(st, key, &r, msg, sizeof msg), DI_ENOTFOUND);
    assert_null(r);
    const char *path = tu_tmp("untouched.bin");
    assert_int_equal(tu_write(path, "old", 3), 0);
    assert_int_equal(store_get_file(st, key, path, msg, sizeof msg), DI_ENOTFOUND);
    size_t n;
    char *old = tu_read(path, &n);
    assert_string_equal(old, "old");
    free(old);
    /* Deleting what is not there succeeds, by key and by prefix. */
    assert_int_equal(store_delete(st, key, msg, sizeof msg), 0);
    assert_int_equal(store_delete_prefix(st, "uploads/nobody/", msg, sizeof msg), 0);
    store_close(st);
}

static void test_missing_bucket(void **state) {
    (void)state;
    if (!have_emu) skip();
    Store *st;
    assert_int_equal(store_open("s3://no-such-bucket", &st, msg, sizeof msg), 0);
    assert_int_equal(store_put(st, "uploads/j/a", "x", 1, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "no-such-bucket"));
    assert_non_null(strstr(msg, "diarist init-aws"));
    /* HEAD answers carry no error code; the bucket is asked about. */
    msg[0] = 0;
    assert_int_equal(store_stat(st, "uploads/j/a", NULL, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "no-such-bucket"));
    assert_int_equal(store_get_file(st, "uploads/j/a", tu_tmp("nb.bin"), msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "init-aws"));
    assert_int_equal(store_delete_prefix(st, "uploads/", msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "no-such-bucket"));
    store_close(st);

    /* A multipart upload that cannot start fails the write that filled
     * the first part, and every later call on that writer. */
    assert_int_equal(store_open("s3://no-such-bucket?part_mb=5", &st, msg, sizeof msg), 0);
    static unsigned char buf[CHUNK];
    StoreWriter *w;
    assert_int_equal(store_open_write(st, "uploads/j/big", &w, msg, sizeof msg), 0);
    int rc = 0, i;
    for (i = 0; i < 100 && rc == 0; i++)
        rc = store_write(w, buf, CHUNK, msg, sizeof msg);
    assert_int_equal(rc, DI_EIO);
    assert_int_equal(i, 81); /* the write after the first full part */
    assert_non_null(strstr(msg, "init-aws"));
    assert_int_equal(store_write(w, buf, 1, msg, sizeof msg), DI_EIO);
    assert_int_equal(store_commit(w, msg, sizeof msg), DI_EIO);
    store_close(st);
}

static void test_delete(void **state) {
    (void)state;
    Store *st = open_s3("?max_keys=2"); /* forces four listing pages */
    char key[128];
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "uploads/job-del/f%d.bin", i);
        assert_int_equal(store_put(st, key, "data", 4, msg, sizeof msg), 0);
    }
    assert_int_equal(store_put(st, "uploads/job-del2/keep", "k", 1, msg, sizeof msg), 0);
    assert_int_equal(store_put(st, "uploads/job-delx", "k", 1, msg, sizeof msg), 0);

    assert_int_equal(store_delete(st, "uploads/job-del/f0.bin", msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/job-del/f0.bin", NULL, msg, sizeof msg), DI_ENOTFOUND);
    int rc = store_delete_prefix(st, "uploads/job-del/", msg, sizeof msg);
    if (rc < 0) fail_msg("delete_prefix: %s", msg);
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "uploads/job-del/f%d.bin", i);
        assert_int_equal(store_stat(st, key, NULL, msg, sizeof msg), DI_ENOTFOUND);
    }
    /* A prefix ending in '/' is a folder: its neighbours stay. */
    assert_int_equal(store_stat(st, "uploads/job-del2/keep", NULL, msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/job-delx", NULL, msg, sizeof msg), 0);
    /* Without the '/', S3's plain prefix match, as the fs backend does. */
    assert_int_equal(store_delete_prefix(st, "uploads/job-del", msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/job-del2/keep", NULL, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(store_stat(st, "uploads/job-delx", NULL, msg, sizeof msg), DI_ENOTFOUND);
    int removed = -1;
    assert_int_equal(store_sweep_temp(st, 0, &removed, msg, sizeof msg), 0);
    assert_int_equal(removed, 0);
    store_close(st);
}

static void test_odd_keys(void **state) {
    (void)state;
    Store *st = open_s3("?max_keys=1");
    const char *keys[] = {
        "uploads/job-odd/Voice memo 12.m4a",
        "uploads/job-odd/Voice_memo_12.m4a", /* what store_sanitize_name makes of it */
        "uploads/job-odd/\xd0\xb4\xd0\xbd\xd0\xb5\xd0\xb2\xd0\xbd\xd0\xb8\xd0\xba "
        "\xc3\xa9t\xc3\xa9.m4a",
        "uploads/job-odd/a+b&c=d;e'f\"g<h>.m4a",
        "uploads/job-odd/100% (final)~!.mp3",
    };
    size_t nk = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < nk; i++) {
        int rc = store_put(st, keys[i], keys[i], strlen(keys[i]), msg, sizeof msg);
        if (rc < 0) fail_msg("put %s: %s", keys[i], msg);
    }
    for (size_t i = 0; i < nk; i++) {
        check_get_file(st, keys[i], keys[i], strlen(keys[i]));
        check_reader(st, keys[i], keys[i], strlen(keys[i]));
    }
    /* The listing gives the keys back XML-escaped; every one must be
     * deleted by its real name. */
    assert_int_equal(store_delete_prefix(st, "uploads/job-odd/", msg, sizeof msg), 0);
    for (size_t i = 0; i < nk; i++)
        assert_int_equal(store_stat(st, keys[i], NULL, msg, sizeof msg), DI_ENOTFOUND);
    store_close(st);
}

int main(void) {
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_url_building),
        cmocka_unit_test(test_xml),
        cmocka_unit_test(test_url_options),
    };
    const struct CMUnitTest live[] = {
        cmocka_unit_test(test_small_roundtrip), cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_abort),           cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_missing_bucket),  cmocka_unit_test(test_delete),
        cmocka_unit_test(test_odd_keys),
    };
    int failed = cmocka_run_group_tests_name("s3_pure", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("s3_live", live, setup, teardown);
    return failed ? 1 : 0;
}
