/* store: the registry that picks a backend from a URL, the argument checks
 * every call passes through, and key validation and file-name sanitising,
 * which do not depend on the backend. */
#include "store/store.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>

extern const StoreBackend store_fs_backend;
extern const StoreBackend store_s3_backend;

/* Tried in order; the first that accepts the URL wins. */
static const StoreBackend *const backends[] = {&store_fs_backend, &store_s3_backend};

struct Store {
    const StoreBackend *be;
    void *state;
};

int store_open(const char *url, Store **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "store_open: no output");
    *out = NULL;
    if (!url || !url[0]) return di_fail(msg, cap, DI_EINVAL, "store: empty URL");
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const StoreBackend *be = backends[i];
        if (!be->accepts(url)) continue;
        Store *st = calloc(1, sizeof *st);
        if (!st) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
        int rc = be->open(url, &st->state, msg, cap);
        if (rc < 0) {
            free(st);
            return rc;
        }
        st->be = be;
        *out = st;
        return 0;
    }
    return di_fail(msg, cap, DI_EINVAL, "store: no backend for URL '%.200s'", url);
}

void store_close(Store *st) {
    if (!st) return;
    st->be->close(st->state);
    free(st);
}

int store_check_key(const char *key, char *msg, size_t cap) {
    if (!key || !key[0]) return di_fail(msg, cap, DI_EINVAL, "store: empty key");
    size_t len = strlen(key);
    if (len > STORE_KEY_MAX) return di_fail(msg, cap, DI_EINVAL, "store: key too long");
    if (key[0] == '/' || key[len - 1] == '/')
        return di_fail(msg, cap, DI_EINVAL, "store: key starts or ends with '/'");
    const char *seg = key;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0) return di_fail(msg, cap, DI_EINVAL, "store: key has an empty segment");
        if (n > 255) return di_fail(msg, cap, DI_EINVAL, "store: key segment too long");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return di_fail(msg, cap, DI_EINVAL, "store: key has a '.' or '..' segment");
        size_t tp = strlen(STORE_TEMP_PREFIX);
        if (n >= tp && memcmp(seg, STORE_TEMP_PREFIX, tp) == 0)
            return di_fail(msg, cap, DI_EINVAL, "store: key segment uses the temp prefix");
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)seg[i];
            if (c == '\\' || c < 0x20 || c == 0x7f)
                return di_fail(msg, cap, DI_EINVAL, "store: key has a backslash or control byte");
        }
        if (!end) break;
        seg = end + 1;
    }
    return 0;
}

/* A prefix is a key, or a key followed by one '/'. */
static int check_prefix(const char *prefix, char *msg, size_t cap) {
    if (!prefix || !prefix[0]) return di_fail(msg, cap, DI_EINVAL, "store: empty prefix");
    size_t len = strlen(prefix);
    if (len > STORE_KEY_MAX) return di_fail(msg, cap, DI_EINVAL, "store: prefix too long");
    char buf[STORE_KEY_MAX + 1];
    memcpy(buf, prefix, len + 1);
    if (buf[len - 1] == '/') buf[len - 1] = 0;
    return store_check_key(buf, msg, cap);
}

int store_open_write(Store *st, const char *key, StoreWriter **out, char *msg, size_t cap) {
    if (!st || !out) return di_fail(msg, cap, DI_EINVAL, "store_open_write: bad arguments");
    *out = NULL;
    int rc = store_check_key(key, msg, cap);
    if (rc < 0) return rc;
    return st->be->open_write(st->state, key, out, msg, cap);
}

int store_write(StoreWriter *w, const void *buf, size_t n, char *msg, size_t cap) {
    if (!w || (!buf && n)) return di_fail(msg, cap, DI_EINVAL, "store_write: bad arguments");
    if (n == 0) return 0;
    return w->write(w, buf, n, msg, cap);
}

int store_commit(StoreWriter *w, char *msg, size_t cap) {
    if (!w) return di_fail(msg, cap, DI_EINVAL, "store_commit: no writer");
    return w->commit(w, msg, cap);
}

void store_abort(StoreWriter *w) {
    if (w) w->abort(w);
}

int store_put(Store *st, const char *key, const void *data, size_t n, char *msg, size_t cap) {
    StoreWriter *w;
    int rc = store_open_write(st, key, &w, msg, cap);
    if (rc < 0) return rc;
    rc = store_write(w, data, n, msg, cap);
    if (rc < 0) {
        store_abort(w);
        return rc;
    }
    return store_commit(w, msg, cap);
}

int store_open_read(Store *st, const char *key, StoreReader **out, char *msg, size_t cap) {
    if (!st || !out) return di_fail(msg, cap, DI_EINVAL, "store_open_read: bad arguments");
    *out = NULL;
    int rc = store_check_key(key, msg, cap);
    if (rc < 0) return rc;
    return st->be->open_read(st->state, key, out, msg, cap);
}

int store_read(StoreReader *r, void *buf, size_t n, size_t *got, char *msg, size_t cap) {
    if (!r || !buf || !got || n == 0)
        return di_fail(msg, cap, DI_EINVAL, "store_read: bad arguments");
    *got = 0;
    return r->read(r, buf, n, got, msg, cap);
}

uint64_t store_reader_size(const StoreReader *r) {
    return r ? r->size : 0;
}

void store_reader_close(StoreReader *r) {
    if (r) r->close(r);
}

int store_get_file(Store *st, const char *key, const char *local_path, char *msg, size_t cap) {
    if (!st || !local_path || !local_path[0])
        return di_fail(msg, cap, DI_EINVAL, "store_get_file: bad arguments");
    int rc = store_check_key(key, msg, cap);
    if (rc < 0) return rc;
    return st->be->get_file(st->state, key, local_path, msg, cap);
}

int store_stat(Store *st, const char *key, uint64_t *size, char *msg, size_t cap) {
    if (!st) return di_fail(msg, cap, DI_EINVAL, "store_stat: no store");
    uint64_t dummy;
    int rc = store_check_key(key, msg, cap);
    if (rc < 0) return rc;
    return st->be->stat(st->state, key, size ? size : &dummy, msg, cap);
}

int store_delete(Store *st, const char *key, char *msg, size_t cap) {
    if (!st) return di_fail(msg, cap, DI_EINVAL, "store_delete: no store");
    int rc = store_check_key(key, msg, cap);
    if (rc < 0) return rc;
    return st->be->remove(st->state, key, msg, cap);
}

int store_delete_prefix(Store *st, const char *prefix, char *msg, size_t cap) {
    if (!st) return di_fail(msg, cap, DI_EINVAL, "store_delete_prefix: no store");
    int rc = check_prefix(prefix, msg, cap);
    if (rc < 0) return rc;
    return st->be->remove_prefix(st->state, prefix, msg, cap);
}

int store_sweep_temp(Store *st, double min_age_s, int *removed, char *msg, size_t cap) {
    if (removed) *removed = 0;
    if (!st || !(min_age_s >= 0))
        return di_fail(msg, cap, DI_EINVAL, "store_sweep_temp: bad arguments");
    int dummy;
    return st->be->sweep_temp(st->state, min_age_s, removed ? removed : &dummy, msg, cap);
}

/* ---- File names ------------------------------------------------------- */

static int is_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Appends the kept bytes of s[0..n) to out (at most max bytes in all),
 * mapping spaces to '_'. Returns the new length. */
static size_t append_clean(char *out, size_t len, size_t max, const char *s, size_t n) {
    for (size_t i = 0; i < n && len < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ') c = '_';
        if (is_alnum(c) || c == '.' || c == '-' || c == '_') out[len++] = (char)c;
    }
    return len;
}

int store_sanitize_name(const char *file_name, char *out, size_t cap) {
    if (!out || cap < 32) return DI_EINVAL;
    if (!file_name) file_name = "";
    /* Only the last path component counts, whichever separator the
     * client's operating system used. */
    const char *base = file_name;
    for (const char *p = file_name; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    size_t blen = strlen(base);

    /* The extension is kept whole when it is short and plain, so the
     * worker and a human can still tell the format from the key. */
    const char *dot = strrchr(base, '.');
    size_t ext_len = dot ? blen - (size_t)(dot - base) - 1 : 0;
    int has_ext = dot && dot != base && ext_len >= 1 && ext_len <= 16;
    for (size_t i = 0; has_ext && i < ext_len; i++)
        if (!is_alnum((unsigned char)dot[1 + i])) has_ext = 0;
    size_t stem_n = has_ext ? (size_t)(dot - base) : blen;

    size_t max = cap - 1 < STORE_NAME_MAX ? cap - 1 : STORE_NAME_MAX;
    size_t room = has_ext ? max - 1 - ext_len : max;
    char stem[STORE_NAME_MAX + 1];
    size_t len = append_clean(stem, 0, room, base, stem_n);
    /* Leading dots would make hidden files, "." or "..", or collide with
     * the temp prefix; trailing dots would double the extension's dot. */
    size_t start = 0;
    while (start < len && stem[start] == '.')
        start++;
    while (len > start && stem[len - 1] == '.')
        len--;
    size_t n = 0;
    if (len > start) {
        memcpy(out, stem + start, len - start);
        n = len - start;
    } else {
        memcpy(out, "file", 4);
        n = 4;
    }
    if (has_ext) {
        out[n++] = '.';
        memcpy(out + n, dot + 1, ext_len);
        n += ext_len;
    }
    out[n] = 0;
    return 0;
}
