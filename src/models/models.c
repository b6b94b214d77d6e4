/* The model table, the model directory and verified downloads; see models.h. */
#include "models/models.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024ull * 1024ull)

/* whisper.cpp's published ggml models. Sizes are the rounded figures it
 * publishes; only the checksums are exact. */
static const ModelInfo MODELS[] = {
    {"tiny", "ggml-tiny.bin", 75 * MIB, "bd577a113a864445d4c299885e0cb97d4ba92b5f"},
    {"tiny.en", "ggml-tiny.en.bin", 75 * MIB, "c78c86eb1a8faa21b369bcd33207cc90d64ae9df"},
    {"base", "ggml-base.bin", 142 * MIB, "465707469ff3a37a2b9b8d8f89f2f99de7299dac"},
    {"base.en", "ggml-base.en.bin", 142 * MIB, "137c40403d78fd54d454da0f9bd998f78703390c"},
    {"small", "ggml-small.bin", 466 * MIB, "55356645c2b361a969dfd0ef2c5a50d530afd8d5"},
    {"small.en", "ggml-small.en.bin", 466 * MIB, "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022"},
    {"medium", "ggml-medium.bin", 1536 * MIB, "fd9727b6e1217c2f614f9b698455c4ffd82463b4"},
    {"medium.en", "ggml-medium.en.bin", 1536 * MIB, "8c30f0e44ce9560643ebd10bbe50cd20eafd3723"},
    {"large-v2", "ggml-large-v2.bin", 2970 * MIB, "0f4c8e34f21cf1a914c59d8b3ce882345ad349d6"},
    {"large-v3", "ggml-large-v3.bin", 2970 * MIB, "ad82bf6a9043ceed055076d0fd39f5f186ff8062"},
    {"large-v3-q5_0", "ggml-large-v3-q5_0.bin", 1126 * MIB,
     "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de"},
    {"large-v3-turbo", "ggml-large-v3-turbo.bin", 1536 * MIB,
     "4af2b29d7ec73d781377bfd1758ca957a807e941"},
    {"large-v3-turbo-q5_0", "ggml-large-v3-turbo-q5_0.bin", 547 * MIB,
     "e050f7970618a659205450ad97eb95a18d69c9ee"},
};
#define N_MODELS ((int)(sizeof MODELS / sizeof MODELS[0]))

/* ---- Table -------------------------------------------------------------- */

int models_count(void) {
    return N_MODELS;
}

const ModelInfo *models_at(int i) {
    return i >= 0 && i < N_MODELS ? &MODELS[i] : NULL;
}

const ModelInfo *models_find(const char *name) {
    for (int i = 0; name && i < N_MODELS; i++)
        if (!strcmp(MODELS[i].name, name)) return &MODELS[i];
    return NULL;
}

/* "tiny, tiny.en, ..." for messages. */
static void known_names(char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < N_MODELS && len < cap; i++) {
        int n = snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", MODELS[i].name);
        if (n < 0) break;
        len += (size_t)n;
    }
}

static int unknown_name(const char *name, char *msg, size_t cap) {
    char names[512];
    known_names(names, sizeof names);
    return di_fail(msg, cap, DI_EINVAL, "unknown model '%s'; known models: %s", name, names);
}

const char *models_base_url(void) {
    const char *env = getenv("DIARIST_MODEL_BASE_URL");
    return env && *env ? env : MODELS_DEFAULT_BASE_URL;
}

int models_url(const char *base, const char *name, char *url, size_t cap, char *msg,
               size_t msgcap) {
    if (!url || !cap) return di_fail(msg, msgcap, DI_EINVAL, "models_url: no buffer");
    const ModelInfo *m = models_find(name);
    if (!m) return unknown_name(name ? name : "(null)", msg, msgcap);
    if (!base) base = models_base_url();
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--; /* "base/" and "base" mean the same */
    int n = snprintf(url, cap, "%.*s/%s", (int)blen, base, m->file);
    if (n < 0 || (size_t)n >= cap) return di_fail(msg, msgcap, DI_ERANGE, "model URL too long");
    return 0;
}

/* ---- Directory ---------------------------------------------------------- */

/* mkdir -p: every missing parent, then the directory itself. */
static int make_dirs(const char *path, char *msg, size_t cap) {
    char buf[4096];
    if (!*path) return di_fail(msg, cap, DI_EINVAL, "empty model directory");
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return di_fail(msg, cap, DI_ERANGE, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        int end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return di_fail(msg, cap, DI_EIO, "cannot create %s: %s", buf, strerror(errno));
            if (end) break;
            *p = '/';
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return di_fail(msg, cap, DI_EIO, "%s is not a directory", path);
    return 0;
}

int models_dir(char *dir, size_t cap, int create, char *msg, size_t msgcap) {
    if (!dir || !cap) return di_fail(msg, msgcap, DI_EINVAL, "models_dir: no buffer");
    const char *env = getenv("DIARIST_MODEL_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (env && *env)
        n = snprintf(dir, cap, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(dir, cap, "%s/diarist/models", xdg);
    else if (home && *home)
        n = snprintf(dir, cap, "%s/.cache/diarist/models", home);
    else
        return di_fail(msg, msgcap, DI_ENOTFOUND,
                       "no model directory: set DIARIST_MODEL_DIR, XDG_CACHE_HOME or HOME");
    if (n < 0 || (size_t)n >= cap) return di_fail(msg, msgcap, DI_ERANGE, "model directory too long");
    return create ? make_dirs(dir, msg, msgcap) : 0;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int models_resolve(const char *spec, const char *dir, char *path, size_t cap, char *msg,
                   size_t msgcap) {
    if (!spec || !*spec || !path || !cap)
        return di_fail(msg, msgcap, DI_EINVAL, "models_resolve: no model given");
    if (is_file(spec)) {
        if (snprintf(path, cap, "%s", spec) >= (int)cap)
            return di_fail(msg, msgcap, DI_ERANGE, "model path too long");
        return 0;
    }
    const ModelInfo *m = models_find(spec);
    if (!m) {
        if (strchr(spec, '/')) return di_fail(msg, msgcap, DI_ENOTFOUND, "%s: no such file", spec);
        return unknown_name(spec, msg, msgcap);
    }
    char dbuf[4096];
    if (!dir) {
        int rc = models_dir(dbuf, sizeof dbuf, 0, msg, msgcap);
        if (rc) return rc;
        dir = dbuf;
    }
    if (snprintf(path, cap, "%s/%s", dir, m->file) >= (int)cap)
        return di_fail(msg, msgcap, DI_ERANGE, "model path too long");
    if (!is_file(path))
        return di_fail(msg, msgcap, DI_ENOTFOUND,
                       "model '%s' is not downloaded yet (no %s); run `diarist model pull %s`",
                       m->name, path, m->name);
    return 0;
}

/* ---- SHA-1 -------------------------------------------------------------- */

static void to_hex(const unsigned char *d, unsigned n, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = 0;
}

static int sha1_begin(EVP_MD_CTX **ctx) {
    *ctx = EVP_MD_CTX_new();
    if (!*ctx) return DI_ENOMEM;
    if (EVP_DigestInit_ex(*ctx, EVP_sha1(), NULL) != 1) {
        EVP_MD_CTX_free(*ctx);
        *ctx = NULL;
        return DI_EINTERNAL;
    }
    return 0;
}

/* Finishes the digest into hex and frees the context. */
static int sha1_end(EVP_MD_CTX *ctx, char hex[MODELS_SHA1_HEX]) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    int ok = EVP_DigestFinal_ex(ctx, d, &n) == 1 && n == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) return DI_EINTERNAL;
    to_hex(d, n, hex);
    return 0;
}

int models_sha1_hex(const void *data, size_t n, char hex[MODELS_SHA1_HEX]) {
    if (!hex || (!data && n)) return DI_EINVAL;
    EVP_MD_CTX *ctx;
    int rc = sha1_begin(&ctx);
    if (rc) return rc;
    if (n && EVP_DigestUpdate(ctx, data, n) != 1) {
        EVP_MD_CTX_free(ctx);
        return DI_EINTERNAL;
    }
    return sha1_end(ctx, hex);
}

int models_sha1_file(const char *path, char hex[MODELS_SHA1_HEX], char *msg, size_t cap) {
    if (!path || !hex) return di_fail(msg, cap, DI_EINVAL, "models_sha1_file: no path");
    FILE *f = fopen(path, "rb");
    if (!f) return di_fail(msg, cap, DI_EIO, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx;
    int rc = sha1_begin(&ctx);
    if (rc) {
        fclose(f);
        return di_fail(msg, cap, rc, "SHA-1: cannot start a digest");
    }
    const size_t chunk = 1 << 16;
    unsigned char *buf = malloc(chunk);
    size_t got;
    int ok = buf != NULL;
    while (ok && (got = fread(buf, 1, chunk, f)) > 0) ok = EVP_DigestUpdate(ctx, buf, got) == 1;
    int read_error = ferror(f);
    fclose(f);
    if (!buf || !ok || read_error) {
        EVP_MD_CTX_free(ctx);
        int out_of_memory = !buf;
        free(buf);
        if (out_of_memory) return di_fail(msg, cap, DI_ENOMEM, "out of memory hashing %s", path);
        return di_fail(msg, cap, DI_EIO, "cannot read %s", path);
    }
    free(buf);
    rc = sha1_end(ctx, hex);
    return rc ? di_fail(msg, cap, rc, "SHA-1: cannot finish the digest") : 0;
}

static int valid_sha1(const char *s) {
    if (strlen(s) != 40) return 0;
    for (int i = 0; i < 40; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) return 0;
    return 1;
}

/* ---- Download ----------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init_once(void) {
    curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One download in flight: where the bytes go and what they hash to. */
typedef struct {
    CURL *curl;
    FILE *out;
    EVP_MD_CTX *sha;
    uint64_t done;
    uint64_t size_hint;
    int write_errno; /* set when the disk refused bytes */
    int stalled;     /* set when no byte came for the stall time */
    double last_byte_at;
    uint64_t bytes_then;
    const ModelsPullOptions *opt;
} Download;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    Download *d = ud;
    size_t n = size * nmemb;
    if (fwrite(data, 1, n, d->out) != n) {
        d->write_errno = errno ? errno : EIO;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (EVP_DigestUpdate(d->sha, data, n) != 1) {
        d->write_errno = EINVAL;
        return 0;
    }
    d->done += n;
    if (d->opt->progress) {
        curl_off_t len = -1;
        curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
        uint64_t total = len > 0 ? (uint64_t)len : d->size_hint;
        d->opt->progress(d->opt->progress_ud, d->done, total);
    }
    return n;
}

static long or_default(long v, long fallback) {
    return v > 0 ? v : fallback;
}

/* curl's own low-speed check averages over the last few seconds, so a
 * stream that stops dead after a fast start is noticed late; a transfer
 * that has received nothing at all for the stall time is ended here. */
static int on_tick(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    Download *d = ud;
    double now = di_now();
    if (d->done != d->bytes_then || d->last_byte_at == 0) {
        d->bytes_then = d->done;
        d->last_byte_at = now;
        return 0;
    }
    if (d->done > 0 && now - d->last_byte_at > (double)or_default(d->opt->low_speed_seconds, 30)) {
        d->stalled = 1;
        return 1; /* curl stops with CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

/* The host part of a URL, for messages; "the server" when it cannot be parsed. */
static void url_host(const char *url, char *host, size_t cap) {
    snprintf(host, cap, "the server");
    CURLU *u = curl_url();
    char *h = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && h)
        snprintf(host, cap, "%s", h);
    curl_free(h);
    curl_url_cleanup(u);
}

/* Turns curl's outcome into diarist's error and message. */
static int transfer_error(CURLcode code, long status, const char *url, const char *errbuf,
                          const Download *d, char *msg, size_t cap) {
    char host[256];
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(code);
    switch (code) {
    case CURLE_HTTP_RETURNED_ERROR:
        return di_fail(msg, cap, DI_EIO, "download failed: %s answered HTTP %ld", url, status);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        url_host(url, host, sizeof host);
        return di_fail(msg, cap, DI_EIO,
                       "could not reach %s (%s); to work offline, fetch the model file another "
                       "way and set DIARIST_MODEL to its path",
                       host, why);
    case CURLE_OPERATION_TIMEDOUT:
        if (d->done == 0 && status == 0) { /* no answer at all, not a slow one */
            url_host(url, host, sizeof host);
            return di_fail(msg, cap, DI_EIO,
                           "could not reach %s (timed out: %s); to work offline, fetch the model "
                           "file another way and set DIARIST_MODEL to its path",
                           host, why);
        }
        return di_fail(msg, cap, DI_EIO, "download of %s stalled after %llu bytes: %s", url,
                       (unsigned long long)d->done, why);
    case CURLE_ABORTED_BY_CALLBACK:
        if (d->stalled)
            return di_fail(msg, cap, DI_EIO, "download of %s stalled after %llu bytes: no data",
                           url, (unsigned long long)d->done);
        return di_fail(msg, cap, DI_EIO, "download of %s was aborted", url);
    case CURLE_WRITE_ERROR:
        if (d->write_errno)
            return di_fail(msg, cap, DI_EIO, "cannot write the download: %s",
                           strerror(d->write_errno));
        return di_fail(msg, cap, DI_EIO, "cannot write the download");
    default:
        return di_fail(msg, cap, DI_EIO, "download of %s failed: %s", url, why);
    }
}

static int run_transfer(Download *d, const char *url, char *msg, size_t cap) {
    const ModelsPullOptions *o = d->opt;
    char errbuf[CURL_ERROR_SIZE] = {0};
    CURL *h = curl_easy_init();
    if (!h) return di_fail(msg, cap, DI_ENOMEM, "libcurl: cannot create a handle");
    d->curl = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "diarist/0.1.0");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: callers may be threaded */
    /* The model host answers with a redirect to its CDN. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* An error page must never be mistaken for model bytes. */
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, or_default(o->connect_timeout_ms, 15000));
    /* No overall timeout (a large model on a slow line may take an hour);
     * a transfer that crawls below this rate for this long is dead. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, or_default(o->low_speed_bytes, 1024));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, or_default(o->low_speed_seconds, 30));
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_tick);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, d);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    CURLcode code = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    d->curl = NULL;
    if (code != CURLE_OK) return transfer_error(code, status, url, errbuf, d, msg, cap);
    return 0;
}

/* "<dir>/.<base>.part" for dest "<dir>/<base>". */
static int part_path(const char *dest, char *part, size_t cap) {
    const char *slash = strrchr(dest, '/');
    int dlen = slash ? (int)(slash - dest + 1) : 0;
    int n = snprintf(part, cap, "%.*s.%s.part", dlen, dest, dest + dlen);
    return n < 0 || (size_t)n >= cap ? DI_ERANGE : 0;
}

/* Makes the rename itself durable: the directory entry is data too. */
static void sync_parent(const char *dest) {
    char dir[4096];
    const char *slash = strrchr(dest, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == dest ? 1 : (int)(slash - dest), dest);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Downloads into the part file, verifies, and renames. The part file is
 * locked so two pulls of the same model cannot interleave their bytes. */
static int download(const char *url, const char *dest, const char *part, const char *expected,
                    const ModelsPullOptions *opt, char *msg, size_t cap) {
    int fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return di_fail(msg, cap, DI_EIO, "cannot create %s: %s", part, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return di_fail(msg, cap, DI_EIO, "another download into %s is in progress", dest);
    }
    Download d = {.opt = opt, .size_hint = opt->size_hint};
    int rc = ftruncate(fd, 0) != 0 ? DI_EIO : 0;
    if (rc) di_fail(msg, cap, rc, "cannot truncate %s: %s", part, strerror(errno));
    if (!rc && !(d.out = fdopen(fd, "wb")))
        rc = di_fail(msg, cap, DI_EIO, "cannot open %s: %s", part, strerror(errno));
    if (!rc && sha1_begin(&d.sha)) rc = di_fail(msg, cap, DI_EINTERNAL, "SHA-1: cannot start");
    if (!rc) rc = run_transfer(&d, url, msg, cap);
    char got[MODELS_SHA1_HEX] = {0};
    if (!rc && sha1_end(d.sha, got)) rc = di_fail(msg, cap, DI_EINTERNAL, "SHA-1: cannot finish");
    else if (rc && d.sha) EVP_MD_CTX_free(d.sha);
    d.sha = NULL;
    if (!rc && expected && strcasecmp(got, expected))
        rc = di_fail(msg, cap, DI_EFORMAT, "checksum mismatch: expected %s, got %s (from %s)",
                     expected, got, url);
    if (!rc && (fflush(d.out) != 0 || fsync(fileno(d.out)) != 0))
        rc = di_fail(msg, cap, DI_EIO, "cannot write %s: %s", part, strerror(errno));
    if (!rc && rename(part, dest) != 0)
        rc = di_fail(msg, cap, DI_EIO, "cannot rename %s to %s: %s", part, dest, strerror(errno));
    if (rc) unlink(part); /* never leave half a model or a wrong one behind */
    if (d.out)
        fclose(d.out); /* also drops the lock */
    else
        close(fd);
    if (!rc) sync_parent(dest);
    return rc;
}

int models_pull_url(const char *url, const char *dest, const char *expected_sha1,
                    const ModelsPullOptions *opt, char *msg, size_t cap) {
    if (!url || !*url || !dest || !*dest) return di_fail(msg, cap, DI_EINVAL, "no URL or destination");
    if (expected_sha1 && !valid_sha1(expected_sha1))
        return di_fail(msg, cap, DI_EINVAL, "not a SHA-1 (40 hex digits): '%s'", expected_sha1);
    ModelsPullOptions defaults = {0};
    if (!opt) opt = &defaults;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_code != CURLE_OK)
        return di_fail(msg, cap, DI_EINTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_code));
    /* Already there and right: nothing to fetch. */
    if (expected_sha1 && is_file(dest)) {
        char have[MODELS_SHA1_HEX] = "unreadable";
        if (models_sha1_file(dest, have, NULL, 0) == 0 && !strcasecmp(have, expected_sha1))
            return 0;
        di_log("warn", "%s does not match its checksum (%s); downloading it again", dest, have);
    }
    char part[4096];
    if (part_path(dest, part, sizeof part))
        return di_fail(msg, cap, DI_ERANGE, "destination path too long");
    return download(url, dest, part, expected_sha1, opt, msg, cap);
}

int models_pull(const char *name, const char *base_url, const char *dir,
                const ModelsPullOptions *opt, char *path, size_t path_cap, char *msg, size_t cap) {
    const ModelInfo *m = models_find(name);
    if (!m) return unknown_name(name ? name : "(null)", msg, cap);
    char dbuf[4096], url[4096], dest[4096];
    int rc;
    if (dir)
        rc = make_dirs(dir, msg, cap);
    else {
        rc = models_dir(dbuf, sizeof dbuf, 1, msg, cap);
        dir = dbuf;
    }
    if (rc) return rc;
    if ((rc = models_url(base_url, name, url, sizeof url, msg, cap))) return rc;
    if (snprintf(dest, sizeof dest, "%s/%s", dir, m->file) >= (int)sizeof dest)
        return di_fail(msg, cap, DI_ERANGE, "model path too long");
    ModelsPullOptions o = opt ? *opt : (ModelsPullOptions){0};
    if (!o.size_hint) o.size_hint = m->size;
    if ((rc = models_pull_url(url, dest, m->sha1, &o, msg, cap))) return rc;
    if (path && path_cap && snprintf(path, path_cap, "%s", dest) >= (int)path_cap)
        return di_fail(msg, cap, DI_ERANGE, "model path too long");
    return 0;
}
