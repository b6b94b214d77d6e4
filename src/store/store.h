/*
 * store: the blob store that holds uploaded audio (and anything else kept
 * as whole files), addressed by keys like "uploads/{job_id}/{file name}".
 *
 * The API streams an upload in with store_open_write/store_write/
 * store_commit; the worker copies the blob to a local file with
 * store_get_file (FFmpeg decodes from a file) and deletes it when the job is
 * done; a server streams blobs out with store_open_read/store_read.
 *
 * One interface, backends behind it (a struct of function pointers plus the
 * backend's own state, like redis's rio), chosen by store_open from a URL:
 *   "file:///abs/dir" or a plain directory path   fs.c (a directory tree)
 *   "s3://bucket[?path_style=0|1&part_mb=N]"       s3.c
 * Nothing outside a backend knows which one runs.
 *
 * Guarantees every backend keeps:
 * - A blob becomes visible only at store_commit, whole; a writer that is
 *   aborted, or whose process dies before committing, leaves no visible
 *   blob. (fs.c writes a temp file in the blob's directory, fsyncs it,
 *   renames it into place and fsyncs the directory. Temp files left by a
 *   crash are invisible to every call and removed by store_sweep_temp.)
 * - Keys are checked at this boundary (store_check_key): they come from
 *   untrusted names, so a key can never reach outside the store.
 *
 * Ownership: store_open gives a Store freed by store_close. A StoreWriter is
 * freed by exactly one of store_commit or store_abort (commit frees it even
 * when it fails). A StoreReader is freed by store_reader_close. All accept
 * NULL. A Store may be used by several threads at once; a writer or reader
 * by one thread at a time.
 */
#ifndef DIARIST_STORE_H
#define DIARIST_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Longest key, and longest name store_sanitize_name produces (bytes,
 * without the terminating 0). */
#define STORE_KEY_MAX 1024
#define STORE_NAME_MAX 100

typedef struct Store Store;
typedef struct StoreWriter StoreWriter;
typedef struct StoreReader StoreReader;

/* Opens the store a URL names. DI_EINVAL for a URL no backend takes. */
int store_open(const char *url, Store **out, char *msg, size_t cap);
void store_close(Store *st);

/* Starts writing the blob `key`. Nothing is visible until store_commit. */
int store_open_write(Store *st, const char *key, StoreWriter **out, char *msg, size_t cap);
/* Appends n bytes. */
int store_write(StoreWriter *w, const void *buf, size_t n, char *msg, size_t cap);
/* Makes the blob visible atomically (replacing an older blob of that key)
 * and frees the writer, whether or not it succeeds. */
int store_commit(StoreWriter *w, char *msg, size_t cap);
/* Drops everything written and frees the writer; leaves nothing behind. */
void store_abort(StoreWriter *w);

/* Writes a small blob in one call (open, write, commit). */
int store_put(Store *st, const char *key, const void *data, size_t n, char *msg, size_t cap);

/* Opens a blob for reading in chunks. DI_ENOTFOUND if absent. */
int store_open_read(Store *st, const char *key, StoreReader **out, char *msg, size_t cap);
/* Reads up to n bytes into buf; *got is 0 only at the end of the blob. */
int store_read(StoreReader *r, void *buf, size_t n, size_t *got, char *msg, size_t cap);
/* The blob's size in bytes, known from the open. */
uint64_t store_reader_size(const StoreReader *r);
void store_reader_close(StoreReader *r);

/* Copies the blob to local_path (written under a temporary name and
 * renamed, so local_path is either complete or untouched). DI_ENOTFOUND. */
int store_get_file(Store *st, const char *key, const char *local_path, char *msg, size_t cap);
/* The blob's size. DI_ENOTFOUND if absent (a "directory" is not a blob). */
int store_stat(Store *st, const char *key, uint64_t *size, char *msg, size_t cap);
/* Deletes a blob; deleting an absent blob succeeds. */
int store_delete(Store *st, const char *key, char *msg, size_t cap);
/* Deletes every blob whose key starts with prefix, e.g. "uploads/{id}/".
 * The prefix is checked like a key, except that it may end with '/'. */
int store_delete_prefix(Store *st, const char *prefix, char *msg, size_t cap);
/* Removes temp files of writes that never committed and are older than
 * min_age_s seconds (0 = all: only safe when no writer is running), and
 * at once those whose writing process has died (the fs backend's temp
 * names carry the writer's pid).
 * *removed (may be NULL) gets how many. Backends without temp files do
 * nothing. */
int store_sweep_temp(Store *st, double min_age_s, int *removed, char *msg, size_t cap);

/* 0 if key is a valid key, else DI_EINVAL with the reason: empty, longer
 * than STORE_KEY_MAX, a leading or trailing '/', an empty, "." or ".."
 * segment, a segment over 255 bytes, a backslash, a control byte, or a
 * segment starting with STORE_TEMP_PREFIX (reserved for temp files). */
#define STORE_TEMP_PREFIX ".diarist-tmp."
int store_check_key(const char *key, char *msg, size_t cap);

/* Turns an uploaded file name into one safe key segment: drops any path
 * ('/' or '\\'), turns spaces into '_', keeps ASCII letters, digits, '.',
 * '-' and '_' and drops every other byte, strips leading and trailing dots,
 * keeps the extension (up to 16 letters or digits) and bounds the result to
 * min(STORE_NAME_MAX, cap - 1) bytes. Never empty, never "." or "..": a
 * name with nothing left becomes "file" (plus its extension). cap must be
 * at least 32; DI_EINVAL otherwise. */
int store_sanitize_name(const char *file_name, char *out, size_t cap);

/* ---- For backends only ------------------------------------------------ */

/* A backend's writer and reader start with these structs, so the backend
 * can cast to its own type. The functions are called only through the
 * store_* wrappers above, which check arguments. */
struct StoreWriter {
    int (*write)(StoreWriter *w, const void *buf, size_t n, char *msg, size_t cap);
    int (*commit)(StoreWriter *w, char *msg, size_t cap); /* frees w */
    void (*abort)(StoreWriter *w);                        /* frees w */
};

struct StoreReader {
    int (*read)(StoreReader *r, void *buf, size_t n, size_t *got, char *msg, size_t cap);
    void (*close)(StoreReader *r);
    uint64_t size;
};

/* One backend. Keys and prefixes reaching it have been checked. `state`
 * is what open returned; it must tolerate calls from several threads. */
typedef struct {
    const char *name; /* for logs: "fs", "s3" */
    /* 1 if this backend takes the URL. */
    int (*accepts)(const char *url);
    int (*open)(const char *url, void **state, char *msg, size_t cap);
    void (*close)(void *state);
    int (*open_write)(void *state, const char *key, StoreWriter **out, char *msg, size_t cap);
    int (*open_read)(void *state, const char *key, StoreReader **out, char *msg, size_t cap);
    int (*get_file)(void *state, const char *key, const char *path, char *msg, size_t cap);
    int (*stat)(void *state, const char *key, uint64_t *size, char *msg, size_t cap);
    int (*remove)(void *state, const char *key, char *msg, size_t cap);
    int (*remove_prefix)(void *state, const char *prefix, char *msg, size_t cap);
    int (*sweep_temp)(void *state, double min_age_s, int *removed, char *msg, size_t cap);
} StoreBackend;

#endif
