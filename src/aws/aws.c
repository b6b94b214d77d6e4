/* Signed requests to AWS-protocol services, endpoints and retries; see aws.h.
 *
 * libcurl 7.88 signs with SigV4 (CURLOPT_AWS_SIGV4) but builds its
 * canonical request from the URL and headers exactly as it is given them,
 * where AWS first normalises both. Measured against AWS's published test
 * vectors (tests/test_aws.c), curl 7.88:
 *
 * - does not sort the query string (get-vanilla-query-order-*), and signs a
 *   parameter without '=' as "name" where AWS signs "name=";
 * - signs a header given several times once per occurrence
 *   ("my-header1;my-header1") instead of once with the values joined by
 *   commas (get-header-key-duplicate), and cannot send a folded header
 *   (get-header-value-multiline);
 * - signs a header that is only being removed ("Content-Type:") although it
 *   is not sent;
 * - for services other than S3, does not encode the path a second time nor
 *   collapse repeated slashes, as AWS's canonical URI does (get-slashes);
 *   our services' paths ("/", "/ACCOUNT/QUEUE") never need either;
 * - does not add x-amz-content-sha256, which S3 requires.
 *
 * It does lowercase and sort header names, trims values and collapses
 * their inner spaces, removes dot segments, hashes the body and signs
 * X-Amz-Security-Token and a given X-Amz-Date (which it then uses as the
 * signing time). So we hand curl what AWS would sign: the query sorted and
 * strictly encoded, every path segment strictly encoded, duplicate headers
 * joined, folded headers unfolded, an explicit Content-Type instead of a
 * removal, and the S3 payload hash. The server then computes the same
 * canonical request from what it receives as curl signed. */
#include "aws/internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* An error answer is a few hundred bytes; more means something else is
 * talking, and collecting it would only waste memory. Success bodies that
 * are not streamed (DynamoDB items, SQS batches) are bounded by AWS itself. */
#define MAX_BODY_BYTES (64u << 20)
#define CONNECT_TIMEOUT_MS 10000L
/* Backoff: full jitter over base * 2^(attempt-1), throttling answers start
 * higher (as the SDKs' standard mode does), and no wait exceeds the cap. */
#define RETRY_BASE_S 0.1
#define THROTTLE_FACTOR 5.0
#define RETRY_MAX_S 20.0

/* ---- Environment and set-up --------------------------------------------- */

const char *aws_env(const char *name) {
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

char *aws_env_dup(const char *name, int *oom) {
    const char *v = aws_env(name);
    if (!v) return NULL;
    char *copy = strdup(v);
    if (!copy) *oom = 1;
    return copy;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init_once(void) {
    curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int aws_curl_init(char *msg, size_t cap) {
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_code != CURLE_OK)
        return di_fail(msg, cap, DI_EINTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_code));
    return 0;
}

/* An endpoint override must be a URL; it is kept without trailing '/'s so
 * callers can append "/bucket/key". */
static int endpoint_dup(const char *name, char **out, char *msg, size_t cap) {
    const char *v = aws_env(name);
    *out = NULL;
    if (!v) return 0;
    if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
        return di_fail(msg, cap, DI_EINVAL, "%s must start with http:// or https:// (got \"%s\")",
                       name, v);
    size_t n = strlen(v);
    while (n > 8 && v[n - 1] == '/')
        n--;
    *out = strndup(v, n);
    return *out ? 0 : di_fail(msg, cap, DI_ENOMEM, "out of memory");
}

/* The seed's own variable beats the SDKs' per-service one. */
static int service_endpoint(const char *seed_name, const char *sdk_name, char **out, char *msg,
                            size_t cap) {
    int rc = endpoint_dup(seed_name, out, msg, cap);
    if (rc == 0 && !*out) rc = endpoint_dup(sdk_name, out, msg, cap);
    return rc;
}

static int read_region(Aws *aws, char *msg, size_t cap) {
    const char *r = aws_env("AWS_REGION");
    if (!r) r = aws_env("AWS_DEFAULT_REGION");
    if (!r) r = "us-east-1";
    size_t n = strlen(r);
    /* The region becomes part of a host name and of the signing scope. */
    int ok = n > 0 && n < sizeof aws->region;
    for (size_t i = 0; ok && i < n; i++)
        ok = islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-';
    if (!ok) return di_fail(msg, cap, DI_EINVAL, "bad AWS region \"%s\"", r);
    memcpy(aws->region, r, n + 1);
    return 0;
}

static double retry_base_s(void) {
    const char *v = aws_env("DIARIST_AWS_RETRY_BASE_MS");
    if (!v) return RETRY_BASE_S;
    char *end;
    double ms = strtod(v, &end);
    return end != v && *end == 0 && ms >= 0 && ms < 60000 ? ms / 1000 : RETRY_BASE_S;
}

int aws_open(Aws **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "aws_open: no result pointer");
    *out = NULL;
    int rc = aws_curl_init(msg, cap);
    if (rc) return rc;
    Aws *aws = calloc(1, sizeof *aws);
    if (!aws) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    pthread_mutex_init(&aws->rng_lock, NULL);
    di_rng_seed(&aws->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)aws);
    aws->retry_base_s = retry_base_s();
    aws->retry_max_s = RETRY_MAX_S;
    rc = read_region(aws, msg, cap);
    if (!rc)
        rc = service_endpoint("S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", &aws->endpoint_s3, msg, cap);
    if (!rc)
        rc = service_endpoint("SQS_ENDPOINT", "AWS_ENDPOINT_URL_SQS", &aws->endpoint_sqs, msg, cap);
    if (!rc)
        rc = service_endpoint("DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL_DYNAMODB",
                              &aws->endpoint_dynamodb, msg, cap);
    if (!rc) rc = endpoint_dup("AWS_ENDPOINT_URL", &aws->endpoint_all, msg, cap);
    if (!rc) rc = aws_cred_chain_init(&aws->creds, msg, cap);
    if (rc) {
        aws_close(aws);
        return rc;
    }
    *out = aws;
    return 0;
}

void aws_close(Aws *aws) {
    if (!aws) return;
    aws_cred_chain_free(&aws->creds);
    free(aws->endpoint_s3);
    free(aws->endpoint_sqs);
    free(aws->endpoint_dynamodb);
    free(aws->endpoint_all);
    pthread_mutex_destroy(&aws->rng_lock);
    free(aws);
}

const char *aws_region(const Aws *aws) {
    return aws ? aws->region : "us-east-1";
}

int aws_endpoint(const Aws *aws, const char *service, char *out, size_t cap, int *custom) {
    if (!aws || !service || !service[0] || !out || !cap) return DI_EINVAL;
    const char *override = NULL;
    if (!strcmp(service, "s3"))
        override = aws->endpoint_s3;
    else if (!strcmp(service, "sqs"))
        override = aws->endpoint_sqs;
    else if (!strcmp(service, "dynamodb"))
        override = aws->endpoint_dynamodb;
    if (!override) override = aws->endpoint_all;
    if (custom) *custom = override != NULL;
    int n;
    if (override) {
        n = snprintf(out, cap, "%s", override);
    } else {
        /* China's partition has its own domain; every other region ours. */
        const char *domain = strncmp(aws->region, "cn-", 3) ? "amazonaws.com" : "amazonaws.com.cn";
        n = snprintf(out, cap, "https://%s.%s.%s", service, aws->region, domain);
    }
    return n < 0 || (size_t)n >= cap ? DI_ERANGE : 0;
}

/* ---- Encoding ----------------------------------------------------------- */

static int unreserved(unsigned char c) {
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int aws_uri_encode(const char *in, int keep_slash, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    if (!in || !out || !cap) return DI_EINVAL;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int plain = unreserved(*p) || (keep_slash && *p == '/');
        if (o + (plain ? 1 : 3) >= cap) {
            out[0] = 0;
            return DI_ERANGE;
        }
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return 0;
}

void aws_sha256_hex(const void *data, size_t n, char hex[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    if (!EVP_Digest(data ? data : "", n, md, &len, EVP_sha256(), NULL) || len != 32)
        memset(md, 0, sizeof md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0, n) into a new string. '+' stays '+': the caller's
 * URL is already encoded, so a '+' there is a plus, never a space. */
static char *decode_range(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    return out;
}

/* Strictly re-encodes s[0, n): decoded first, so "%7e", "~" and "%7E" all
 * become "~" and the server, which canonicalises the same way, agrees. */
static char *reencode_range(const char *s, size_t n, int keep_slash) {
    char *raw = decode_range(s, n);
    if (!raw) return NULL;
    size_t cap = strlen(raw) * 3 + 1;
    char *out = malloc(cap);
    if (out && aws_uri_encode(raw, keep_slash, out, cap) != 0) {
        free(out);
        out = NULL;
    }
    free(raw);
    return out;
}

typedef struct {
    char *name, *value;
} Param;

static int param_cmp(const void *a, const void *b) {
    const Param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* The query in AWS's canonical form: every name and value strictly
 * encoded, "name=" for a bare name, sorted by name then value. */
static char *canonical_query(const char *q) {
    size_t n_max = 1;
    for (const char *p = q; *p; p++)
        n_max += *p == '&';
    Param *params = calloc(n_max, sizeof *params);
    if (!params) return NULL;
    size_t n = 0, total = 1;
    int ok = 1;
    for (const char *p = q; ok && *p;) {
        size_t len = strcspn(p, "&");
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t name_len = eq ? (size_t)(eq - p) : len;
            params[n].name = reencode_range(p, name_len, 0);
            params[n].value = eq ? reencode_range(eq + 1, len - name_len - 1, 0) : strdup("");
            ok = params[n].name && params[n].value;
            if (ok) total += strlen(params[n].name) + strlen(params[n].value) + 2;
            n++;
        }
        p += len + (p[len] == '&');
    }
    char *out = ok ? malloc(total) : NULL;
    if (out) {
        qsort(params, n, sizeof *params, param_cmp);
        size_t o = 0;
        for (size_t i = 0; i < n; i++)
            o += (size_t)sprintf(out + o, "%s%s=%s", i ? "&" : "", params[i].name, params[i].value);
        out[o] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
    return out;
}

/* The URL as curl must be given it for its signature to match AWS's
 * canonical request (see the top of this file). */
static char *normalised_url(const char *url) {
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end) return NULL;
    const char *path = strchr(scheme_end + 3, '/');
    const char *query = strchr(scheme_end + 3, '?');
    if (query && path && path > query) path = NULL;
    size_t frag = strcspn(url, "#");
    size_t path_end = query ? (size_t)(query - url) : frag;
    size_t host_end = path ? (size_t)(path - url) : path_end;
    char *cpath = path ? reencode_range(path, path_end - host_end, 1) : strdup("/");
    char *cquery = NULL;
    if (query) {
        char *q = strndup(query + 1, frag - (size_t)(query - url) - 1);
        cquery = q ? canonical_query(q) : NULL;
        free(q);
    }
    char *out = NULL;
    if (cpath && (!query || cquery) &&
        asprintf(&out, "%.*s%s%s%s", (int)host_end, url, cpath, cquery && cquery[0] ? "?" : "",
                 cquery ? cquery : "") < 0)
        out = NULL;
    free(cpath);
    free(cquery);
    return out;
}

/* ---- Request headers ---------------------------------------------------- */

/* Appends "Name: value" to *list; 0 or DI_ENOMEM. */
static int add_header(struct curl_slist **list, const char *name, const char *value) {
    char *line = NULL;
    if (asprintf(&line, "%s: %s", name, value) < 0) return DI_ENOMEM;
    struct curl_slist *next = curl_slist_append(*list, line);
    free(line);
    if (!next) return DI_ENOMEM;
    *list = next;
    return 0;
}

static int has_header(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (!strncasecmp(headers[i], name, n) && headers[i][n] == ':') return 1;
    return 0;
}

/* The value of headers[i] (after its ':'), unfolded: line breaks of an
 * obsolete folded header become spaces, which curl then collapses. */
static char *header_value(const char *line) {
    const char *colon = strchr(line, ':');
    char *v = strdup(colon ? colon + 1 : "");
    for (char *p = v; p && *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    return v;
}

/* The caller's headers with every name given more than once joined into
 * one "name: v1,v2" (what AWS signs, and what HTTP says it means). A
 * header without a value is skipped: curl 7.88 would sign its removal. */
static int add_caller_headers(struct curl_slist **list, const char *const *headers) {
    for (size_t i = 0; headers && headers[i]; i++) {
        const char *colon = strchr(headers[i], ':');
        if (!colon || colon == headers[i]) continue;
        size_t name_len = (size_t)(colon - headers[i]);
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strncasecmp(headers[j], headers[i], name_len) && headers[j][name_len] == ':';
        if (seen) continue;
        char *joined = header_value(headers[i]);
        for (size_t j = i + 1; joined && headers[j]; j++) {
            if (strncasecmp(headers[j], headers[i], name_len) || headers[j][name_len] != ':')
                continue;
            char *more = header_value(headers[j]), *both = NULL;
            /* Values are trimmed before joining, as AWS's canonical form does. */
            const char *a = joined, *b = more ? more : "";
            while (isspace((unsigned char)*a))
                a++;
            while (isspace((unsigned char)*b))
                b++;
            size_t alen = strlen(a);
            while (alen && isspace((unsigned char)a[alen - 1]))
                alen--;
            if (!more || asprintf(&both, "%.*s,%s", (int)alen, a, b) < 0) both = NULL;
            free(more);
            free(joined);
            joined = both;
        }
        if (!joined) return DI_ENOMEM;
        const char *v = joined;
        while (isspace((unsigned char)*v))
            v++;
        char *name = strndup(headers[i], name_len);
        int rc = name && *v ? add_header(list, name, v) : name ? 0 : DI_ENOMEM;
        free(name);
        free(joined);
        if (rc) return rc;
    }
    return 0;
}

/* Everything sent besides the caller's headers. */
static int build_headers(const AwsRequest *req, const AwsCredentials *cred,
                         struct curl_slist **out) {
    struct curl_slist *list = NULL;
    int rc = add_caller_headers(&list, req->headers);
    if (!rc && cred->session_token[0] && !has_header(req->headers, "X-Amz-Security-Token"))
        rc = add_header(&list, "X-Amz-Security-Token", cred->session_token);
    if (!rc && !strcmp(req->service, "s3") && !has_header(req->headers, "x-amz-content-sha256")) {
        char hex[65];
        aws_sha256_hex(req->body, req->body_len, hex);
        rc = add_header(&list, "x-amz-content-sha256", hex);
    }
    /* Without a type curl would send a form's, making an S3 object
     * "application/x-www-form-urlencoded"; removing it with "Content-Type:"
     * is no way out, since curl 7.88 would still sign it. */
    if (!rc && req->body && strcmp(req->method, "POST") &&
        !has_header(req->headers, "Content-Type"))
        rc = add_header(&list, "Content-Type", "binary/octet-stream");
    if (rc) {
        curl_slist_free_all(list);
        return rc;
    }
    *out = list;
    return 0;
}

/* ---- One exchange ------------------------------------------------------- */

typedef struct {
    CURL *h;
    const AwsRequest *req;
    AwsResponse *resp;
    size_t headers_cap, body_cap;
    int streamed;       /* some of the body went to on_data */
    int receiver_abort; /* on_data asked to stop */
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
} Exchange;

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t want = *cap ? *cap : 1024;
        while (want < *len + n + 1)
            want *= 2;
        char *grown = realloc(*buf, want);
        if (!grown) return -1;
        *buf = grown;
        *cap = want;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    Exchange *x = user;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->req->on_data && status >= 200 && status < 300) {
        x->streamed = 1;
        if (x->req->on_data(x->req->ud, data, len) != 0) {
            x->receiver_abort = 1;
            return 0;
        }
        return len;
    }
    if (x->resp->body_len + len > MAX_BODY_BYTES) {
        x->too_big = 1;
        return 0;
    }
    return append(&x->resp->body, &x->resp->body_len, &x->body_cap, data, len) ? 0 : len;
}

static size_t on_header(char *data, size_t size, size_t n, void *user) {
    Exchange *x = user;
    size_t len = size * n;
    /* A new status line (after a 100 Continue, say): forget the last one. */
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) x->resp->headers_len = 0;
    if (x->resp->headers_len + len > (1u << 20)) return 0;
    return append(&x->resp->headers, &x->resp->headers_len, &x->headers_cap, data, len) ? 0 : len;
}

static void set_method(CURL *h, const AwsRequest *req) {
    if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
        if (strcmp(req->method, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(req->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    } else if (strcmp(req->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
}

/* Sends one attempt; the answer (if any) lands in x->resp. */
static CURLcode send_once(Exchange *x, const char *url, const AwsCredentials *cred,
                          const char *region, struct curl_slist *headers) {
    const AwsRequest *req = x->req;
    char sigv4[160], userpwd[520];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:%s", region, req->service);
    snprintf(userpwd, sizeof userpwd, "%s:%s", cred->access_key, cred->secret_key);
    long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : AWS_DEFAULT_TIMEOUT_MS;
    CURL *h = x->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    set_method(h, req);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "diarist");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: we run in threads */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    /* A redirect would carry a signature made for another URL. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A big S3 part waits at most a second for "100 Continue". */
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 1000L);
    CURLcode code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->resp->status);
    memset(userpwd, 0, sizeof userpwd);
    return code;
}

/* ---- Reading the answer ------------------------------------------------- */

int aws_response_header(const AwsResponse *resp, const char *name, char *out, size_t cap) {
    if (!resp || !name || !out || !cap) return DI_EINVAL;
    out[0] = 0;
    size_t n = strlen(name);
    const char *p = resp->headers, *end = p ? p + resp->headers_len : NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > n && !strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1, *e = eol;
            while (v < e && isspace((unsigned char)*v))
                v++;
            while (e > v && isspace((unsigned char)e[-1]))
                e--;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return 0;
        }
        p = eol + 1;
    }
    return DI_ENOTFOUND;
}

/* The text of the first <tag>...</tag> in an XML error, entities decoded. */
static int xml_text(const char *xml, const char *tag, char *out, size_t cap) {
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *start = strstr(xml, open);
    const char *stop = start ? strstr(start, close) : NULL;
    if (!stop) return 0;
    static const struct {
        const char *entity;
        char c;
    } entities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t o = 0;
    for (const char *p = start + strlen(open); p < stop && o + 1 < cap;) {
        char c = *p;
        size_t skip = 1;
        for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
            size_t elen = strlen(entities[i].entity);
            if (!strncmp(p, entities[i].entity, elen)) c = entities[i].c, skip = elen;
        }
        out[o++] = c;
        p += skip;
    }
    out[o] = 0;
    return o > 0;
}

/* "com.amazon.coral.validate#ValidationException:http://..." and
 * "AWS.SimpleQueueService.NonExistentQueue;Sender" name the same kind of
 * thing: the code is between the last '#' and the first ':' or ';'. */
static void copy_code(char *out, size_t cap, const char *raw) {
    const char *hash = strrchr(raw, '#');
    const char *s = hash ? hash + 1 : raw;
    size_t n = strcspn(s, ":;");
    snprintf(out, cap, "%.*s", (int)n, s);
}

/* The error code and message of a non-2xx answer, whichever protocol. */
static void parse_error(AwsResponse *resp) {
    resp->error_code[0] = resp->error_message[0] = 0;
    const char *body = resp->body ? resp->body : "";
    while (isspace((unsigned char)*body))
        body++;
    char raw[256];
    if (*body == '{') {
        json_t *root = json_loads(body, 0, NULL);
        const char *code = json_string_value(json_object_get(root, "__type"));
        if (!code) code = json_string_value(json_object_get(root, "code"));
        if (code) copy_code(resp->error_code, sizeof resp->error_code, code);
        const char *m = json_string_value(json_object_get(root, "message"));
        if (!m) m = json_string_value(json_object_get(root, "Message"));
        if (m) snprintf(resp->error_message, sizeof resp->error_message, "%s", m);
        json_decref(root);
    } else if (*body == '<') {
        xml_text(body, "Code", resp->error_code, sizeof resp->error_code);
        xml_text(body, "Message", resp->error_message, sizeof resp->error_message);
    }
    if (!resp->error_code[0] &&
        (!aws_response_header(resp, "x-amzn-query-error", raw, sizeof raw) ||
         !aws_response_header(resp, "x-amzn-ErrorType", raw, sizeof raw)))
        copy_code(resp->error_code, sizeof resp->error_code, raw);
}

static void read_answer(AwsResponse *resp) {
    if (aws_response_header(resp, "x-amz-request-id", resp->request_id, sizeof resp->request_id))
        aws_response_header(resp, "x-amzn-RequestId", resp->request_id, sizeof resp->request_id);
    aws_response_header(resp, "ETag", resp->etag, sizeof resp->etag);
    if (resp->status < 200 || resp->status >= 300) parse_error(resp);
}

void aws_response_free(AwsResponse *resp) {
    if (!resp) return;
    free(resp->body);
    free(resp->headers);
    memset(resp, 0, sizeof *resp);
}

/* Empties resp for another attempt, keeping its buffers' memory. */
static void response_reset(AwsResponse *resp) {
    resp->status = 0;
    resp->body_len = resp->headers_len = 0;
    if (resp->body) resp->body[0] = 0;
    if (resp->headers) resp->headers[0] = 0;
    resp->request_id[0] = resp->error_code[0] = resp->error_message[0] = resp->etag[0] = 0;
}

/* ---- What to do next ---------------------------------------------------- */

typedef enum { NEXT_DONE, NEXT_RETRY, NEXT_THROTTLED, NEXT_REFRESH, NEXT_FAIL } Next;

static int code_in(const char *code, const char *const *list) {
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(code, list[i])) return 1;
    return 0;
}

/* The codes the AWS SDKs treat as throttling, from every service we use. */
static const char *const throttling_codes[] = {"Throttling",
                                               "ThrottlingException",
                                               "ThrottledException",
                                               "RequestThrottledException",
                                               "TooManyRequestsException",
                                               "ProvisionedThroughputExceededException",
                                               "TransactionInProgressException",
                                               "RequestLimitExceeded",
                                               "BandwidthLimitExceeded",
                                               "LimitExceededException",
                                               "RequestThrottled",
                                               "SlowDown",
                                               "PriorRequestNotComplete",
                                               "EC2ThrottledException",
                                               "AWS.SimpleQueueService.RequestThrottled",
                                               NULL};
/* Transient failures that some services report with a 4xx status. */
static const char *const transient_codes[] = {"RequestTimeout",
                                              "RequestTimeoutException",
                                              "InternalError",
                                              "InternalFailure",
                                              "ServiceUnavailable",
                                              "IDPCommunicationError",
                                              NULL};
static const char *const expired_codes[] = {"ExpiredToken", "ExpiredTokenException",
                                            "TokenRefreshRequired", NULL};

static int curl_code_is_transient(CURLcode code) {
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static Next classify_answer(const AwsResponse *resp, int has_token) {
    const char *code = resp->error_code;
    if (resp->status >= 200 && resp->status < 300) return NEXT_DONE;
    /* RequestExpired is also a skewed clock; only a session token, which
     * really expires, makes fetching new credentials worth it. */
    if (code_in(code, expired_codes) || (has_token && !strcmp(code, "RequestExpired")))
        return NEXT_REFRESH;
    if (code_in(code, throttling_codes) || resp->status == 429) return NEXT_THROTTLED;
    if (code_in(code, transient_codes) || resp->status >= 500) return NEXT_RETRY;
    return NEXT_DONE;
}

/* Full jitter, as the SDKs do: uniform in [0, min(cap, base * 2^(attempt-1))],
 * so clients throttled together do not come back together. */
static double backoff_s(Aws *aws, int attempt, int throttled) {
    double base = aws->retry_base_s * (throttled ? THROTTLE_FACTOR : 1.0);
    double ceiling = fmin(aws->retry_max_s, base * ldexp(1.0, attempt - 1));
    pthread_mutex_lock(&aws->rng_lock);
    double u = di_rng_uniform(&aws->rng);
    pthread_mutex_unlock(&aws->rng_lock);
    return u * ceiling;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- Requests ----------------------------------------------------------- */

/* The scheme and host of a URL, for messages that must not quote queries. */
static void url_host(const char *url, char *out, size_t cap) {
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    snprintf(out, cap, "%.*s", (int)strcspn(s, "/?#"), s);
}

static int check_request(const Aws *aws, const AwsRequest *req, AwsResponse *resp, char *msg,
                         size_t cap) {
    if (!aws || !req || !resp) return di_fail(msg, cap, DI_EINVAL, "aws_request: missing argument");
    memset(resp, 0, sizeof *resp);
    if (!req->method || !req->service || !req->url)
        return di_fail(msg, cap, DI_EINVAL, "aws_request: method, service and url are required");
    if (strncmp(req->url, "http://", 7) && strncmp(req->url, "https://", 8))
        return di_fail(msg, cap, DI_EINVAL, "aws_request: not an http(s) URL: %s", req->url);
    for (const char *p = req->service; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-')
            return di_fail(msg, cap, DI_EINVAL, "aws_request: bad service name");
    return 0;
}

/* One attempt with the current credentials. Returns the curl code; *why
 * describes a failure without an answer. */
static CURLcode attempt_once(Aws *aws, const AwsRequest *req, const char *url,
                             const AwsCredentials *cred, AwsResponse *resp, char *why,
                             size_t why_cap, int *fatal) {
    *fatal = 0;
    struct curl_slist *headers = NULL;
    Exchange x = {.req = req, .resp = resp};
    x.headers_cap = resp->headers ? resp->headers_len + 1 : 0;
    x.body_cap = resp->body ? resp->body_len + 1 : 0;
    response_reset(resp);
    if (build_headers(req, cred, &headers) || !(x.h = curl_easy_init())) {
        curl_slist_free_all(headers);
        snprintf(why, why_cap, "out of memory");
        *fatal = 1;
        return CURLE_OUT_OF_MEMORY;
    }
    CURLcode code = send_once(&x, url, cred, aws->region, headers);
    curl_easy_cleanup(x.h);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
        *fatal = x.receiver_abort || x.too_big || !curl_code_is_transient(code);
        snprintf(why, why_cap, "%s",
                 x.receiver_abort ? "the receiver stopped the transfer"
                 : x.too_big      ? "the answer is too large"
                 : x.errbuf[0]    ? x.errbuf
                                  : curl_easy_strerror(code));
        resp->status = 0;
    } else {
        read_answer(resp);
    }
    return code;
}

int aws_request(Aws *aws, const AwsRequest *req, AwsResponse *resp, char *msg, size_t cap) {
    int rc = check_request(aws, req, resp, msg, cap);
    if (rc) return rc;
    char *url = normalised_url(req->url);
    if (!url) return di_fail(msg, cap, DI_ENOMEM, "aws_request: cannot normalise the URL");
    char host[256], why[CURL_ERROR_SIZE + 64] = "no attempt made";
    url_host(req->url, host, sizeof host);
    int max_attempts = req->max_attempts > 0 ? req->max_attempts : AWS_DEFAULT_ATTEMPTS;
    int refreshed = 0, answered = 0;
    rc = 0;
    for (int attempt = 1; attempt <= max_attempts; attempt++) {
        AwsCredentials cred;
        rc = aws_credentials(aws, &cred, msg, cap);
        if (rc) break;
        if (attempt > 1 && req->on_reset) req->on_reset(req->ud);
        int fatal;
        resp->attempts = attempt;
        CURLcode code = attempt_once(aws, req, url, &cred, resp, why, sizeof why, &fatal);
        int has_token = cred.session_token[0] != 0;
        memset(&cred, 0, sizeof cred);
        answered = code == CURLE_OK;
        if (fatal) {
            rc = di_fail(msg, cap, DI_EIO, "%s %s: %s", req->method, host, why);
            break;
        }
        Next next = answered ? classify_answer(resp, has_token) : NEXT_RETRY;
        if (next == NEXT_DONE) break;
        if (next == NEXT_REFRESH) {
            if (refreshed) break; /* new credentials did not help: the answer stands */
            refreshed = 1;
            di_log("info", "aws: %s %s: %s; fetching new credentials", req->method, host,
                   resp->error_code);
            aws_credentials_invalidate(aws);
            if (attempt == max_attempts) max_attempts++; /* the refresh is not the server's fault */
            continue;
        }
        if (attempt == max_attempts) break;
        double wait = backoff_s(aws, attempt, next == NEXT_THROTTLED);
        di_log("info", "aws: %s %s attempt %d: %s; retrying in %.3f s", req->method, host, attempt,
               answered ? resp->error_code[0] ? resp->error_code : "server error" : why, wait);
        sleep_s(wait);
    }
    free(url);
    if (!rc && !answered)
        rc = di_fail(msg, cap, DI_EIO, "%s %s: no answer after %d attempts: %s", req->method, host,
                     resp->attempts, why);
    return rc;
}
