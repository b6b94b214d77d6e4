/* store/s3.c: the blob store as an S3 bucket (AWS, or anything that speaks
 * its protocol: MinIO, Ceph, R2, LocalStack, s3rver). A key "a/b/c" is the
 * object "a/b/c", so the seed's layout (uploads/{job_id}/{name}, content
 * type binary/octet-stream) is kept and both systems read each other's
 * objects.
 *
 * URL: "s3://BUCKET" ("s3://" alone: AUDIO_BUCKET_NAME, else audio-files),
 * with optional query options:
 *   path_style=0|1  addressing; default: S3_FORCE_PATH_STYLE=true|false,
 *                   else path-style when a custom endpoint is configured
 *                   (MinIO, Ceph and R2 need it), virtual-hosted otherwise
 *   part_mb=N       multipart part size in MiB (5..5120, default 8)
 *   max_keys=N      page size of listings (1..1000, default 1000)
 *
 * Writes are buffered up to one part in memory. A blob that fits in one
 * part is one PutObject at commit, so S3's own atomic replace makes it
 * visible whole. A larger one is a multipart upload, which S3 also shows
 * only at CompleteMultipartUpload; a failure or an abort sends
 * AbortMultipartUpload. That call is best effort (s3rver answers 405, a
 * crashed process sends nothing), so buckets should carry a lifecycle rule
 * that aborts incomplete uploads after a day.
 *
 * Reads fetch ranges of READ_WINDOW bytes, each pinned to the ETag seen at
 * open (If-Match), so a reader never mixes two versions of a blob. */
#include "store/store.h"

#include "aws/aws.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum {
    MIB = 1024 * 1024,
    PART_MB_DEFAULT = 8,
    PART_MB_MIN = 5, /* S3 refuses smaller parts, except the last */
    PART_MB_MAX = 5120,
    MAX_PARTS = 10000,
    READ_WINDOW = 4 * MIB,
    URL_MAX = 3 * STORE_KEY_MAX + 4096,
};

typedef struct {
    Aws *aws;
    char bucket[256];
    char endpoint[1024];
    int path_style;
    size_t part_size;
    int max_keys;
} S3Store;

typedef struct {
    StoreWriter base;
    S3Store *s3;
    char key[STORE_KEY_MAX + 1];
    char *buf; /* the part being filled; grows up to part_size */
    size_t len, cap;
    char *upload_id; /* NULL until the first part is full */
    char **etags;    /* one per uploaded part, quotes kept */
    int nparts, etags_cap;
    int failed; /* an error already ended the upload */
} S3Writer;

typedef struct {
    StoreReader base;
    S3Store *s3;
    char key[STORE_KEY_MAX + 1];
    char etag[256];
    uint64_t pos; /* offset of the next byte to fetch */
    char *buf;    /* the window fetched last */
    size_t len, off, cap;
    int overflow; /* the server sent more than the range asked for */
} S3Reader;

/* ---- URLs ------------------------------------------------------------- */

/* A bucket name that can be a DNS label under TLS: lowercase letters,
 * digits and hyphens, 3 to 63 bytes. Names with dots break the wildcard
 * certificate, so the SDKs fall back to path-style for them, as we do. */
static int dns_compatible(const char *b) {
    size_t n = strlen(b);
    if (n < 3 || n > 63 || b[0] == '-' || b[n - 1] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-'))
            return 0;
    return 1;
}

/* The URL of `key` (NULL: the bucket itself) with an already encoded
 * query (NULL: none). Path-style: ENDPOINT/BUCKET/KEY; virtual-hosted:
 * SCHEME://BUCKET.HOST/KEY. Not static: tests/test_s3.c checks it as a
 * pure function, since virtual hosts do not resolve on loopback. */
int s3_build_url(const char *endpoint, const char *bucket, int path_style, const char *key,
                 const char *query, char *out, size_t cap) {
    char enc[3 * STORE_KEY_MAX + 1] = "";
    if (key && aws_uri_encode(key, 1, enc, sizeof enc) < 0) return DI_ERANGE;
    const char *q = query && query[0] ? "?" : "";
    const char *qs = query ? query : "";
    int n;
    if (path_style) {
        n = snprintf(out, cap, "%s/%s%s%s%s%s", endpoint, bucket, key ? "/" : "", enc, q, qs);
    } else {
        const char *host = strstr(endpoint, "://");
        if (!host) return DI_EINVAL;
        host += 3;
        n = snprintf(out, cap, "%.*s%s.%s/%s%s%s", (int)(host - endpoint), endpoint, bucket, host,
                     enc, q, qs);
    }
    return n >= 0 && (size_t)n < cap ? 0 : DI_ERANGE;
}

static int object_url(const S3Store *s3, const char *key, const char *query, char *out,
                      size_t cap) {
    return s3_build_url(s3->endpoint, s3->bucket, s3->path_style, key, query, out, cap);
}

/* ---- XML -------------------------------------------------------------- */

/* Appends code point cp to out as UTF-8; 0, or -1 when it does not fit. */
static int put_utf8(unsigned long cp, char *out, size_t cap, size_t *len) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else if (cp < 0x110000) {
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    } else {
        return -1;
    }
    if (*len + n >= cap) return -1;
    memcpy(out + *len, b, n);
    *len += n;
    return 0;
}

/* Decodes one entity at s (just after '&', up to ';'); 0 or -1. */
static int unescape_entity(const char *s, size_t n, char *out, size_t cap, size_t *len) {
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strlen(named[i].name) == n && memcmp(s, named[i].name, n) == 0)
            return put_utf8((unsigned char)named[i].c, out, cap, len);
    if (n < 2 || n > 10 || s[0] != '#') return -1;
    int hex = s[1] == 'x' || s[1] == 'X';
    unsigned long cp = 0;
    size_t i = hex ? 2 : 1;
    if (i == n) return -1;
    for (; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'                            ? c - '0'
                : hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                                : -1;
        if (d < 0) return -1;
        cp = cp * (hex ? 16 : 10) + (unsigned long)d;
    }
    return cp == 0 ? -1 : put_utf8(cp, out, cap, len);
}

/* Copies XML text s[0..n) into out, decoding the five named entities and
 * numeric references. 0; DI_EFORMAT for a bad entity; DI_ERANGE when out
 * is too small. */
static int xml_unescape(const char *s, size_t n, char *out, size_t cap) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') {
            if (len + 1 >= cap) return DI_ERANGE;
            out[len++] = s[i];
            continue;
        }
        const char *semi = memchr(s + i, ';', n - i);
        if (!semi) return DI_EFORMAT;
        size_t en = (size_t)(semi - s) - i - 1;
        if (unescape_entity(s + i + 1, en, out, cap, &len) < 0)
            return len + 4 >= cap ? DI_ERANGE : DI_EFORMAT;
        i += en + 1;
    }
    out[len] = 0;
    return 0;
}

/* Finds the next element <tag>...</tag> in [*p, end) and gives its raw
 * text as [*text, *text + *n); moves *p past it. The answers S3 sends are
 * flat and small, so matching the exact open and close tags is enough;
 * "<Key>" never matches "<KeyCount>" because the '>' is part of the
 * needle. 0, DI_ENOTFOUND, or DI_EFORMAT for an unclosed element. */
static int xml_find(const char **p, const char *end, const char *tag, const char **text,
                    size_t *n) {
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = memmem(*p, (size_t)(end - *p), open, strlen(open));
    if (!a) return DI_ENOTFOUND;
    a += strlen(open);
    const char *b = memmem(a, (size_t)(end - a), close, strlen(close));
    if (!b) return DI_EFORMAT;
    *text = a;
    *n = (size_t)(b - a);
    *p = b + strlen(close);
    return 0;
}

/* The unescaped text of the next <tag> in [*p, end) (see xml_find). Not
 * static: tests/test_s3.c checks it on hand-written answers. */
int s3_xml_next(const char **p, const char *end, const char *tag, char *out, size_t cap) {
    const char *text;
    size_t n;
    int rc = xml_find(p, end, tag, &text, &n);
    if (rc < 0) return rc;
    return xml_unescape(text, n, out, cap);
}

/* ---- Requests and errors ---------------------------------------------- */

static AwsRequest request(const char *method, const char *url, const char *const *headers) {
    AwsRequest rq;
    memset(&rq, 0, sizeof rq);
    rq.method = method;
    rq.service = "s3";
    rq.url = url;
    rq.headers = headers;
    return rq;
}

/* Sends rq, leaving the answer in resp (freed by the caller even on
 * failure: it is zeroed first). */
static int s3_send(S3Store *s3, const AwsRequest *rq, AwsResponse *resp, char *msg, size_t cap) {
    memset(resp, 0, sizeof *resp);
    return aws_request(s3->aws, rq, resp, msg, cap);
}

static int ok_status(long status) {
    return status >= 200 && status < 300;
}

/* Turns a failed answer into an error: NoSuchKey (or a bare 404) is
 * DI_ENOTFOUND, a missing bucket says how to create it, anything else is
 * DI_EIO with S3's code and message. */
static int s3_fail(const S3Store *s3, const char *op, const char *key, const AwsResponse *r,
                   char *msg, size_t cap) {
    const char *code = r->error_code;
    if (!strcmp(code, "NoSuchBucket"))
        return di_fail(msg, cap, DI_EIO,
                       "store: S3 bucket '%s' does not exist at %s (create it with "
                       "`diarist init-aws`)",
                       s3->bucket, s3->endpoint);
    if (!strcmp(code, "NoSuchKey") || (r->status == 404 && !code[0]))
        return di_fail(msg, cap, DI_ENOTFOUND, "store: no blob '%.200s'", key);
    return di_fail(msg, cap, DI_EIO,
                   "store: S3 %s of '%.200s' in bucket '%s' failed: HTTP %ld%s%s%s%.300s", op, key,
                   s3->bucket, r->status, code[0] ? " " : "", code, r->error_message[0] ? ": " : "",
                   r->error_message);
}

/* A HEAD answer has no body, so a 404 does not say whether the key or the
 * whole bucket is missing; asking about the bucket tells them apart (only
 * on this path, so found blobs cost one request). */
static int head_missing(S3Store *s3, const char *key, char *msg, size_t cap) {
    char url[URL_MAX];
    if (object_url(s3, NULL, NULL, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: URL too long");
    AwsRequest rq = request("HEAD", url, NULL);
    AwsResponse resp;
    int rc = s3_send(s3, &rq, &resp, msg, cap);
    long status = resp.status;
    aws_response_free(&resp);
    if (rc == 0 && status == 404) {
        AwsResponse fake = {.status = 404};
        snprintf(fake.error_code, sizeof fake.error_code, "NoSuchBucket");
        return s3_fail(s3, "HEAD", key, &fake, msg, cap);
    }
    return di_fail(msg, cap, DI_ENOTFOUND, "store: no blob '%.200s'", key);
}

/* HEAD of an object: its size and ETag. */
static int head_object(S3Store *s3, const char *key, uint64_t *size, char *etag, size_t etag_cap,
                       char *msg, size_t cap) {
    char url[URL_MAX];
    if (object_url(s3, key, NULL, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    AwsRequest rq = request("HEAD", url, NULL);
    AwsResponse resp;
    int rc = s3_send(s3, &rq, &resp, msg, cap);
    if (rc == 0 && resp.status == 404 && !resp.error_code[0]) {
        aws_response_free(&resp);
        return head_missing(s3, key, msg, cap);
    }
    if (rc == 0 && !ok_status(resp.status)) rc = s3_fail(s3, "HEAD", key, &resp, msg, cap);
    char len[32];
    if (rc == 0 && aws_response_header(&resp, "Content-Length", len, sizeof len) < 0)
        rc = di_fail(msg, cap, DI_EIO, "store: S3 HEAD of '%.200s' gave no Content-Length", key);
    if (rc == 0) {
        *size = strtoull(len, NULL, 10);
        if (etag) snprintf(etag, etag_cap, "%s", resp.etag);
    }
    aws_response_free(&resp);
    return rc;
}

/* ---- Opening ---------------------------------------------------------- */

static int s3_accepts(const char *url) {
    return strncmp(url, "s3://", 5) == 0;
}

/* Parses "1"/"true"/"0"/"false"; -1 for anything else. */
static int parse_bool(const char *s, size_t n) {
    if ((n == 1 && s[0] == '1') || (n == 4 && !strncasecmp(s, "true", 4))) return 1;
    if ((n == 1 && s[0] == '0') || (n == 5 && !strncasecmp(s, "false", 5))) return 0;
    return -1;
}

static int parse_int(const char *s, size_t n, long lo, long hi, long *out) {
    char buf[24];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Applies one "name=value" option of the URL's query. */
static int parse_option(S3Store *s3, const char *opt, size_t n, int *path_style, char *msg,
                        size_t cap) {
    const char *eq = memchr(opt, '=', n);
    size_t nlen = eq ? (size_t)(eq - opt) : n;
    const char *v = eq ? eq + 1 : opt + n;
    size_t vlen = n - nlen - (eq ? 1 : 0);
    long x;
    if (nlen == 10 && !memcmp(opt, "path_style", 10)) {
        if ((*path_style = parse_bool(v, vlen)) >= 0) return 0;
    } else if (nlen == 7 && !memcmp(opt, "part_mb", 7)) {
        if (parse_int(v, vlen, PART_MB_MIN, PART_MB_MAX, &x) == 0) {
            s3->part_size = (size_t)x * MIB;
            return 0;
        }
    } else if (nlen == 8 && !memcmp(opt, "max_keys", 8)) {
        if (parse_int(v, vlen, 1, 1000, &x) == 0) {
            s3->max_keys = (int)x;
            return 0;
        }
    }
    return di_fail(msg, cap, DI_EINVAL, "store: bad S3 URL option '%.*s'", (int)n, opt);
}

/* Bucket and options from "s3://BUCKET[/][?opt&opt...]". */
static int parse_url(S3Store *s3, const char *url, int *path_style, char *msg, size_t cap) {
    const char *b = url + 5;
    size_t n = strcspn(b, "/?");
    const char *rest = b + n;
    if (*rest == '/') rest++;
    if (*rest && *rest != '?')
        return di_fail(msg, cap, DI_EINVAL, "store: S3 URL '%.200s' has a path; want s3://BUCKET",
                       url);
    if (n == 0) {
        const char *env = getenv("AUDIO_BUCKET_NAME");
        b = env && env[0] ? env : "audio-files";
        n = strlen(b);
    }
    if (n >= sizeof s3->bucket)
        return di_fail(msg, cap, DI_EINVAL, "store: S3 bucket name too long");
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", b[i]))
            return di_fail(msg, cap, DI_EINVAL, "store: bad S3 bucket name '%.*s'", (int)n, b);
    memcpy(s3->bucket, b, n);
    s3->bucket[n] = 0;
    for (const char *o = *rest == '?' ? rest + 1 : rest; *o;) {
        size_t on = strcspn(o, "&");
        if (on && parse_option(s3, o, on, path_style, msg, cap) < 0) return DI_EINVAL;
        o += on + (o[on] == '&');
    }
    return 0;
}

/* Path-style unless told otherwise when the endpoint is custom (MinIO,
 * Ceph, R2 and the emulators serve one host for every bucket). */
static int choose_path_style(S3Store *s3, int from_url, int custom) {
    int ps = from_url;
    const char *env = getenv("S3_FORCE_PATH_STYLE");
    if (ps < 0 && env && env[0]) ps = parse_bool(env, strlen(env));
    if (ps < 0) ps = custom;
    if (!ps && !dns_compatible(s3->bucket)) {
        di_log("info", "store: S3 bucket '%s' is not a DNS name; using path-style addressing",
               s3->bucket);
        ps = 1;
    }
    return ps;
}

static int s3_open(const char *url, void **state, char *msg, size_t cap) {
    S3Store *s3 = calloc(1, sizeof *s3);
    if (!s3) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    s3->part_size = (size_t)PART_MB_DEFAULT * MIB;
    s3->max_keys = 1000;
    int from_url = -1, custom = 0;
    int rc = parse_url(s3, url, &from_url, msg, cap);
    if (rc == 0) rc = aws_open(&s3->aws, msg, cap);
    if (rc == 0 && aws_endpoint(s3->aws, "s3", s3->endpoint, sizeof s3->endpoint, &custom) < 0)
        rc = di_fail(msg, cap, DI_EINVAL, "store: S3 endpoint too long");
    if (rc < 0) {
        aws_close(s3->aws);
        free(s3);
        return rc;
    }
    s3->path_style = choose_path_style(s3, from_url, custom);
    di_log("info", "store: S3 bucket '%s' at %s (%s addressing, %zu MiB parts)", s3->bucket,
           s3->endpoint, s3->path_style ? "path-style" : "virtual-hosted", s3->part_size / MIB);
    *state = s3;
    return 0;
}

static void s3_close(void *state) {
    S3Store *s3 = state;
    if (!s3) return;
    aws_close(s3->aws);
    free(s3);
}

/* ---- Writing ---------------------------------------------------------- */

static const char *const put_headers[] = {"Content-Type: binary/octet-stream", NULL};

static void writer_free(S3Writer *w) {
    for (int i = 0; i < w->nparts; i++)
        free(w->etags[i]);
    free(w->etags);
    free(w->upload_id);
    free(w->buf);
    free(w);
}

/* "partNumber=N&uploadId=ID" or "uploadId=ID" (part 0): the parameters in
 * SigV4's canonical (sorted) order, so the signature holds whatever the
 * signer does with the query. */
static int upload_query(const S3Writer *w, int part, char *out, size_t cap) {
    char id[3 * 1024 + 1];
    if (aws_uri_encode(w->upload_id, 0, id, sizeof id) < 0) return DI_ERANGE;
    int n = part ? snprintf(out, cap, "partNumber=%d&uploadId=%s", part, id)
                 : snprintf(out, cap, "uploadId=%s", id);
    return n >= 0 && (size_t)n < cap ? 0 : DI_ERANGE;
}

/* AbortMultipartUpload, best effort: the blob never becomes visible
 * either way, and the parts are left to the bucket's lifecycle rule when
 * the server refuses (s3rver answers 405). */
static void abort_upload(S3Writer *w) {
    if (!w->upload_id) return;
    char q[4096], url[URL_MAX], msg[256] = "";
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    int rc =
        upload_query(w, 0, q, sizeof q) == 0 && object_url(w->s3, w->key, q, url, sizeof url) == 0
            ? 0
            : DI_ERANGE;
    if (rc == 0) {
        AwsRequest rq = request("DELETE", url, NULL);
        rc = s3_send(w->s3, &rq, &resp, msg, sizeof msg);
    }
    if (rc == 0 && !ok_status(resp.status))
        snprintf(msg, sizeof msg, "HTTP %ld %s", resp.status, resp.error_code);
    if (rc < 0 || !ok_status(resp.status))
        di_log("warn",
               "store: S3 AbortMultipartUpload of '%.200s' failed (%s); its parts stay until "
               "the bucket's lifecycle rule removes them",
               w->key, msg);
    aws_response_free(&resp);
    free(w->upload_id);
    w->upload_id = NULL;
}

/* Ends the upload after an error: aborts it and marks the writer, so
 * later writes and the commit report failure. Returns rc. */
static int writer_fail(S3Writer *w, int rc) {
    w->failed = 1;
    abort_upload(w);
    return rc;
}

static int create_upload(S3Writer *w, char *msg, size_t cap) {
    char url[URL_MAX];
    if (object_url(w->s3, w->key, "uploads=", url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    AwsRequest rq = request("POST", url, put_headers);
    AwsResponse resp;
    int rc = s3_send(w->s3, &rq, &resp, msg, cap);
    if (rc == 0 && !ok_status(resp.status))
        rc = s3_fail(w->s3, "CreateMultipartUpload", w->key, &resp, msg, cap);
    char id[1024];
    const char *p = resp.body;
    if (rc == 0 &&
        (!p || s3_xml_next(&p, p + resp.body_len, "UploadId", id, sizeof id) < 0 || !id[0]))
        rc = di_fail(msg, cap, DI_EIO,
                     "store: S3 CreateMultipartUpload of '%.200s' gave no UploadId", w->key);
    aws_response_free(&resp);
    if (rc == 0 && !(w->upload_id = strdup(id)))
        rc = di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    return rc;
}

/* Uploads the buffer as the next part, keeping its ETag, and empties it. */
static int upload_part(S3Writer *w, char *msg, size_t cap) {
    if (w->nparts == MAX_PARTS)
        return di_fail(msg, cap, DI_ERANGE, "store: '%.200s' needs more than %d parts", w->key,
                       MAX_PARTS);
    if (w->nparts == w->etags_cap) {
        int ncap = w->etags_cap ? 2 * w->etags_cap : 16;
        char **e = realloc(w->etags, (size_t)ncap * sizeof *e);
        if (!e) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
        w->etags = e;
        w->etags_cap = ncap;
    }
    char q[4096], url[URL_MAX];
    if (upload_query(w, w->nparts + 1, q, sizeof q) < 0 ||
        object_url(w->s3, w->key, q, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    AwsRequest rq = request("PUT", url, NULL);
    rq.body = w->buf;
    rq.body_len = w->len;
    AwsResponse resp;
    int rc = s3_send(w->s3, &rq, &resp, msg, cap);
    if (rc == 0 && !ok_status(resp.status))
        rc = s3_fail(w->s3, "UploadPart", w->key, &resp, msg, cap);
    if (rc == 0 && !resp.etag[0])
        rc = di_fail(msg, cap, DI_EIO, "store: S3 UploadPart of '%.200s' gave no ETag", w->key);
    if (rc == 0 && !(w->etags[w->nparts] = strdup(resp.etag)))
        rc = di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    aws_response_free(&resp);
    if (rc == 0) {
        w->nparts++;
        w->len = 0;
    }
    return rc;
}

static int s3_write(StoreWriter *base, const void *buf, size_t n, char *msg, size_t cap) {
    S3Writer *w = (S3Writer *)base;
    size_t part = w->s3->part_size;
    if (w->failed)
        return di_fail(msg, cap, DI_EIO, "store: the upload of '%.200s' already failed", w->key);
    const char *p = buf;
    while (n > 0) {
        /* A full part goes out only when more data follows, so a blob of
         * exactly one part is still a single PutObject. */
        if (w->len == part) {
            int rc = w->upload_id ? 0 : create_upload(w, msg, cap);
            if (rc == 0) rc = upload_part(w, msg, cap);
            if (rc < 0) return writer_fail(w, rc);
        }
        if (w->len == w->cap) { /* grow geometrically: small blobs stay small */
            size_t ncap = w->cap ? 2 * w->cap : 64 * 1024;
            if (ncap > part) ncap = part;
            char *nb = realloc(w->buf, ncap);
            if (!nb) return writer_fail(w, di_fail(msg, cap, DI_ENOMEM, "store: out of memory"));
            w->buf = nb;
            w->cap = ncap;
        }
        size_t k = w->cap - w->len < n ? w->cap - w->len : n;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int put_object(S3Writer *w, char *msg, size_t cap) {
    char url[URL_MAX];
    if (object_url(w->s3, w->key, NULL, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    AwsRequest rq = request("PUT", url, put_headers);
    rq.body = w->buf;
    rq.body_len = w->len;
    AwsResponse resp;
    int rc = s3_send(w->s3, &rq, &resp, msg, cap);
    if (rc == 0 && !ok_status(resp.status)) rc = s3_fail(w->s3, "PUT", w->key, &resp, msg, cap);
    aws_response_free(&resp);
    return rc;
}

/* The CompleteMultipartUpload body: every part with its ETag. */
static char *complete_body(const S3Writer *w, size_t *len) {
    size_t cap = 128;
    for (int i = 0; i < w->nparts; i++)
        cap += 80 + strlen(w->etags[i]);
    char *x = malloc(cap);
    if (!x) return NULL;
    size_t n = (size_t)snprintf(x, cap, "<CompleteMultipartUpload>");
    for (int i = 0; i < w->nparts; i++)
        n += (size_t)snprintf(x + n, cap - n,
                              "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              w->etags[i]);
    n += (size_t)snprintf(x + n, cap - n, "</CompleteMultipartUpload>");
    *len = n;
    return x;
}

/* S3 may answer CompleteMultipartUpload with 200 and an <Error> body (it
 * failed after the headers went out), so the body is checked too. */
static int complete_upload(S3Writer *w, char *msg, size_t cap) {
    static const char *const hdrs[] = {"Content-Type: application/xml", NULL};
    char q[4096], url[URL_MAX];
    if (upload_query(w, 0, q, sizeof q) < 0 || object_url(w->s3, w->key, q, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    size_t blen;
    char *body = complete_body(w, &blen);
    if (!body) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    AwsRequest rq = request("POST", url, hdrs);
    rq.body = body;
    rq.body_len = blen;
    AwsResponse resp;
    int rc = s3_send(w->s3, &rq, &resp, msg, cap);
    free(body);
    const char *p = resp.body;
    if (rc == 0 && ok_status(resp.status) && p && strstr(p, "<Error>")) {
        s3_xml_next(&p, resp.body + resp.body_len, "Code", resp.error_code, sizeof resp.error_code);
        p = resp.body;
        s3_xml_next(&p, resp.body + resp.body_len, "Message", resp.error_message,
                    sizeof resp.error_message);
        resp.status = 500;
    }
    if (rc == 0 && !ok_status(resp.status))
        rc = s3_fail(w->s3, "CompleteMultipartUpload", w->key, &resp, msg, cap);
    aws_response_free(&resp);
    return rc;
}

static int s3_commit(StoreWriter *base, char *msg, size_t cap) {
    S3Writer *w = (S3Writer *)base;
    int rc;
    if (w->failed) {
        rc = di_fail(msg, cap, DI_EIO, "store: the upload of '%.200s' already failed", w->key);
    } else if (!w->upload_id) {
        rc = put_object(w, msg, cap);
    } else {
        rc = upload_part(w, msg, cap);
        if (rc == 0) rc = complete_upload(w, msg, cap);
        if (rc == 0) {
            free(w->upload_id); /* completed: nothing left to abort */
            w->upload_id = NULL;
        }
    }
    abort_upload(w);
    writer_free(w);
    return rc;
}

static void s3_abort(StoreWriter *base) {
    S3Writer *w = (S3Writer *)base;
    abort_upload(w);
    writer_free(w);
}

static int s3_open_write(void *state, const char *key, StoreWriter **out, char *msg, size_t cap) {
    S3Writer *w = calloc(1, sizeof *w);
    if (!w) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    w->s3 = state;
    snprintf(w->key, sizeof w->key, "%s", key);
    w->base.write = s3_write;
    w->base.commit = s3_commit;
    w->base.abort = s3_abort;
    *out = &w->base;
    return 0;
}

/* ---- Reading ---------------------------------------------------------- */

static int window_data(void *ud, const void *data, size_t n) {
    S3Reader *r = ud;
    if (n > r->cap - r->len) {
        r->overflow = 1;
        return 1;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

static void window_reset(void *ud) {
    ((S3Reader *)ud)->len = 0;
}

/* Fetches the next window of the blob with a ranged GET. */
static int fetch_window(S3Reader *r, char *msg, size_t cap) {
    uint64_t want = r->base.size - r->pos < r->cap ? r->base.size - r->pos : r->cap;
    char url[URL_MAX], range[96], match[300];
    if (object_url(r->s3, r->key, NULL, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)r->pos,
             (unsigned long long)(r->pos + want - 1));
    snprintf(match, sizeof match, "If-Match: %s", r->etag);
    const char *hdrs[] = {range, r->etag[0] ? match : NULL, NULL};
    AwsRequest rq = request("GET", url, hdrs);
    rq.on_data = window_data;
    rq.on_reset = window_reset;
    rq.ud = r;
    r->len = r->off = 0;
    r->overflow = 0;
    AwsResponse resp;
    int rc = s3_send(r->s3, &rq, &resp, msg, cap);
    if (r->overflow)
        rc =
            di_fail(msg, cap, DI_EIO, "store: S3 GET of '%.200s' ignored the Range header", r->key);
    else if (rc == 0 && resp.status == 412)
        rc = di_fail(msg, cap, DI_EIO, "store: '%.200s' was replaced while being read", r->key);
    else if (rc == 0 && !ok_status(resp.status))
        rc = s3_fail(r->s3, "GET", r->key, &resp, msg, cap);
    else if (rc == 0 && r->len != want)
        rc = di_fail(msg, cap, DI_EIO, "store: S3 GET of '%.200s' gave %zu bytes, not %llu", r->key,
                     r->len, (unsigned long long)want);
    aws_response_free(&resp);
    if (rc == 0) r->pos += want;
    return rc;
}

static int s3_read(StoreReader *base, void *buf, size_t n, size_t *got, char *msg, size_t cap) {
    S3Reader *r = (S3Reader *)base;
    if (r->off == r->len) {
        if (r->pos >= r->base.size) return 0; /* *got stays 0: the end */
        int rc = fetch_window(r, msg, cap);
        if (rc < 0) return rc;
    }
    size_t k = r->len - r->off < n ? r->len - r->off : n;
    memcpy(buf, r->buf + r->off, k);
    r->off += k;
    *got = k;
    return 0;
}

static void s3_reader_close(StoreReader *base) {
    S3Reader *r = (S3Reader *)base;
    free(r->buf);
    free(r);
}

static int s3_open_read(void *state, const char *key, StoreReader **out, char *msg, size_t cap) {
    S3Reader *r = calloc(1, sizeof *r);
    if (!r) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    r->s3 = state;
    snprintf(r->key, sizeof r->key, "%s", key);
    int rc = head_object(state, key, &r->base.size, r->etag, sizeof r->etag, msg, cap);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->cap = r->base.size < READ_WINDOW ? (size_t)r->base.size : READ_WINDOW;
    if (r->cap && !(r->buf = malloc(r->cap))) {
        free(r);
        return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    }
    r->base.read = s3_read;
    r->base.close = s3_reader_close;
    *out = &r->base;
    return 0;
}

/* ---- Whole-blob calls ------------------------------------------------- */

typedef struct {
    int fd;
    int err; /* errno of a failed write */
    uint64_t n;
} FileSink;

static int file_data(void *ud, const void *data, size_t n) {
    FileSink *s = ud;
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(s->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            s->err = k < 0 ? errno : EIO;
            return 1;
        }
        p += k;
        n -= (size_t)k;
        s->n += (uint64_t)k;
    }
    return 0;
}

/* A retried GET starts the file over. */
static void file_reset(void *ud) {
    FileSink *s = ud;
    if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0) s->err = errno;
    s->n = 0;
}

/* One GET streamed into the open file fd. */
static int get_into(S3Store *s3, const char *key, int fd, char *msg, size_t cap) {
    char url[URL_MAX];
    if (object_url(s3, key, NULL, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    FileSink sink = {.fd = fd};
    AwsRequest rq = request("GET", url, NULL);
    rq.on_data = file_data;
    rq.on_reset = file_reset;
    rq.ud = &sink;
    AwsResponse resp;
    int rc = s3_send(s3, &rq, &resp, msg, cap);
    char len[32];
    if (sink.err)
        rc = di_fail(msg, cap, DI_EIO, "store: writing '%.200s' failed: %s", key,
                     strerror(sink.err));
    else if (rc == 0 && !ok_status(resp.status))
        rc = s3_fail(s3, "GET", key, &resp, msg, cap);
    else if (rc == 0 && aws_response_header(&resp, "Content-Length", len, sizeof len) == 0 &&
             strtoull(len, NULL, 10) != sink.n)
        rc = di_fail(msg, cap, DI_EIO, "store: S3 GET of '%.200s' was cut short", key);
    aws_response_free(&resp);
    return rc;
}

static int s3_get_file(void *state, const char *key, const char *path, char *msg, size_t cap) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.part%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return di_fail(msg, cap, DI_EINVAL, "store: local path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return di_fail(msg, cap, DI_EIO, "store: cannot create '%.200s': %s", tmp, strerror(errno));
    int rc = get_into(state, key, fd, msg, cap);
    if (close(fd) != 0 && rc == 0) rc = di_fail(msg, cap, DI_EIO, "store: close failed");
    if (rc == 0 && rename(tmp, path) != 0)
        rc = di_fail(msg, cap, DI_EIO, "store: rename to '%.200s' failed: %s", path,
                     strerror(errno));
    if (rc < 0) unlink(tmp);
    return rc;
}

static int s3_stat(void *state, const char *key, uint64_t *size, char *msg, size_t cap) {
    return head_object(state, key, size, NULL, 0, msg, cap);
}

/* ---- Deleting --------------------------------------------------------- */

static int s3_remove(void *state, const char *key, char *msg, size_t cap) {
    S3Store *s3 = state;
    char url[URL_MAX];
    if (object_url(s3, key, NULL, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long for a URL");
    AwsRequest rq = request("DELETE", url, NULL);
    AwsResponse resp;
    int rc = s3_send(s3, &rq, &resp, msg, cap);
    if (rc == 0 && !ok_status(resp.status)) rc = s3_fail(s3, "DELETE", key, &resp, msg, cap);
    aws_response_free(&resp);
    return rc == DI_ENOTFOUND ? 0 : rc; /* absent already: done */
}

/* Deletes every <Contents><Key> of one ListObjectsV2 page. */
static int remove_listed(S3Store *s3, const char *xml, size_t n, char *msg, size_t cap) {
    const char *p = xml, *end = xml + n, *block;
    size_t blen;
    int rc;
    while ((rc = xml_find(&p, end, "Contents", &block, &blen)) == 0) {
        char key[STORE_KEY_MAX + 1];
        const char *q = block;
        if (s3_xml_next(&q, block + blen, "Key", key, sizeof key) < 0)
            return di_fail(msg, cap, DI_EFORMAT, "store: S3 listing has a bad <Key>");
        rc = s3_remove(s3, key, msg, cap);
        if (rc < 0) return rc;
    }
    return rc == DI_ENOTFOUND ? 0 : di_fail(msg, cap, DI_EFORMAT, "store: bad S3 listing");
}

/* The ListObjectsV2 query, parameters sorted as SigV4 wants them. */
static int list_query(const S3Store *s3, const char *prefix, const char *token, char *out,
                      size_t cap) {
    char p[3 * STORE_KEY_MAX + 1], t[3 * 1024 + 1] = "";
    if (aws_uri_encode(prefix, 0, p, sizeof p) < 0) return DI_ERANGE;
    if (token[0] && aws_uri_encode(token, 0, t, sizeof t) < 0) return DI_ERANGE;
    int n =
        snprintf(out, cap, "%s%s%slist-type=2&max-keys=%d&prefix=%s",
                 token[0] ? "continuation-token=" : "", t, token[0] ? "&" : "", s3->max_keys, p);
    return n >= 0 && (size_t)n < cap ? 0 : DI_ERANGE;
}

/* Lists one page under prefix (after token, "" for the first), deletes
 * what it names, and leaves the next page's token in token ("" when this
 * page was the last). */
static int remove_page(S3Store *s3, const char *prefix, char *token, size_t token_cap, char *msg,
                       size_t cap) {
    char q[URL_MAX], url[URL_MAX];
    if (list_query(s3, prefix, token, q, sizeof q) < 0 ||
        object_url(s3, NULL, q, url, sizeof url) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: prefix too long for a URL");
    AwsRequest rq = request("GET", url, NULL);
    AwsResponse resp;
    int rc = s3_send(s3, &rq, &resp, msg, cap);
    if (rc == 0 && !ok_status(resp.status))
        rc = s3_fail(s3, "ListObjectsV2", prefix, &resp, msg, cap);
    if (rc == 0 && !resp.body) rc = di_fail(msg, cap, DI_EFORMAT, "store: empty S3 listing");
    if (rc == 0) rc = remove_listed(s3, resp.body, resp.body_len, msg, cap);
    char trunc[16] = "";
    const char *p = resp.body;
    if (rc == 0) s3_xml_next(&p, resp.body + resp.body_len, "IsTruncated", trunc, sizeof trunc);
    token[0] = 0;
    p = resp.body;
    if (rc == 0 && !strcmp(trunc, "true") &&
        (s3_xml_next(&p, resp.body + resp.body_len, "NextContinuationToken", token, token_cap) <
             0 ||
         !token[0]))
        rc = di_fail(msg, cap, DI_EFORMAT, "store: truncated S3 listing without a token");
    aws_response_free(&resp);
    return rc;
}

/* ListObjectsV2 page by page, deleting each page's objects before asking
 * for the next, so a huge prefix never sits in memory. */
static int s3_remove_prefix(void *state, const char *prefix, char *msg, size_t cap) {
    char token[1024] = "";
    do {
        int rc = remove_page(state, prefix, token, sizeof token, msg, cap);
        if (rc < 0) return rc;
    } while (token[0]);
    return 0;
}

/* S3 has no temp files: a write is invisible until it completes. Stale
 * multipart uploads are the bucket lifecycle rule's job, since finding
 * them needs ListMultipartUploads, which not every server has (s3rver). */
static int s3_sweep_temp(void *state, double min_age_s, int *removed, char *msg, size_t cap) {
    (void)state, (void)min_age_s, (void)msg, (void)cap;
    *removed = 0;
    return 0;
}

const StoreBackend store_s3_backend = {
    .name = "s3",
    .accepts = s3_accepts,
    .open = s3_open,
    .close = s3_close,
    .open_write = s3_open_write,
    .open_read = s3_open_read,
    .get_file = s3_get_file,
    .stat = s3_stat,
    .remove = s3_remove,
    .remove_prefix = s3_remove_prefix,
    .sweep_temp = s3_sweep_temp,
};
