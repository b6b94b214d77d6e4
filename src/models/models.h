/*
 * models: where diarist's Whisper models come from.
 *
 * - A built-in table of the ggml models whisper.cpp publishes (name, file
 *   name, approximate size, SHA-1), so a user can say "base.en" instead of
 *   a path.
 * - The model directory: $DIARIST_MODEL_DIR, else
 *   $XDG_CACHE_HOME/diarist/models, else ~/.cache/diarist/models.
 * - Resolving a model spec (a path or a name) to a file.
 * - Downloading a model over HTTP(S) with libcurl: the bytes stream into a
 *   hidden ".part" file beside the destination while their SHA-1 is
 *   computed, and only a file whose checksum matches is renamed to the
 *   final name, so a model file in the directory is always complete.
 *
 * Errors: functions return 0 or a negative DI_E* code (core.h) and write a
 * readable message into the caller's msg buffer. Nothing here allocates on
 * behalf of the caller.
 */
#ifndef DIARIST_MODELS_H
#define DIARIST_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define MODELS_DEFAULT_BASE_URL "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
#define MODELS_SHA1_HEX 41 /* 40 hex digits and the terminating 0 */

typedef struct {
    const char *name; /* "base.en" */
    const char *file; /* "ggml-base.en.bin" */
    uint64_t size;    /* approximate bytes, as published; for display and progress */
    const char *sha1; /* 40 lowercase hex digits */
} ModelInfo;

/* The table, in the order whisper.cpp lists it. */
int models_count(void);
const ModelInfo *models_at(int i); /* NULL when i is out of range */
/* The entry for a name, or NULL. */
const ModelInfo *models_find(const char *name);

/* The download base: $DIARIST_MODEL_BASE_URL when set, else the default. */
const char *models_base_url(void);
/* "<base>/ggml-<name>.bin"; base NULL means models_base_url(). DI_EINVAL for
 * an unknown name, DI_ERANGE when cap is too small. */
int models_url(const char *base, const char *name, char *url, size_t cap, char *msg,
               size_t msgcap);

/* The model directory (see above), created with its parents when create is
 * set. DI_ENOTFOUND when no variable names a home for it. */
int models_dir(char *dir, size_t cap, int create, char *msg, size_t msgcap);

/* Turns a model spec into a file path. A spec naming an existing file is
 * returned as is. A known name gives its path in dir (NULL: models_dir()),
 * or DI_ENOTFOUND, telling the user to run `diarist model pull NAME`, when
 * it is not downloaded yet. A spec with a '/' that is no file is
 * DI_ENOTFOUND; any other unknown name is DI_EINVAL and the message lists
 * the known names. */
int models_resolve(const char *spec, const char *dir, char *path, size_t cap, char *msg,
                   size_t msgcap);

/* SHA-1 (OpenSSL EVP) as 40 lowercase hex digits. */
int models_sha1_hex(const void *data, size_t n, char hex[MODELS_SHA1_HEX]);
int models_sha1_file(const char *path, char hex[MODELS_SHA1_HEX], char *msg, size_t cap);

/* Called as bytes arrive: done so far and the expected total (the
 * Content-Length, else the caller's estimate, else 0 when unknown). */
typedef void (*ModelsProgress)(void *ud, uint64_t done, uint64_t total);

typedef struct {
    ModelsProgress progress; /* may be NULL */
    void *progress_ud;
    long connect_timeout_ms; /* 0: 15 s */
    /* A download slower than low_speed_bytes per second for
     * low_speed_seconds fails instead of hanging. 0: 1024 B/s for 30 s. */
    long low_speed_bytes;
    long low_speed_seconds;
    uint64_t size_hint; /* total to report when the server sends no length */
} ModelsPullOptions;

/* Downloads url to dest (following redirects) through "<dir>/.<file>.part".
 * With expected_sha1 (40 hex digits, any case) the download is verified: a
 * mismatch deletes the part file and returns DI_EFORMAT "checksum mismatch:
 * expected X, got Y"; and a dest that already holds those bytes is kept
 * without any request. With expected_sha1 NULL the bytes are taken as they
 * come. HTTP errors (DI_EIO) name the URL and status; an unreachable host
 * (DI_EIO) says so and names DIARIST_MODEL as the offline alternative.
 * opt may be NULL for the defaults. */
int models_pull_url(const char *url, const char *dest, const char *expected_sha1,
                    const ModelsPullOptions *opt, char *msg, size_t cap);

/* Pulls a table model into dir (NULL: models_dir(), created when needed)
 * from base_url (NULL: models_base_url()), verified against the table's
 * SHA-1. Writes the final path into path when path is not NULL. */
int models_pull(const char *name, const char *base_url, const char *dir,
                const ModelsPullOptions *opt, char *path, size_t path_cap, char *msg, size_t cap);

#endif
