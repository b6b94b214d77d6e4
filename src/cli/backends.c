/* The service's three backends, opened from the environment. One place, so
 * serve, worker and run agree on where jobs live. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static int mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* The fleet's backends when the seed's AWS settings are there: the seed's
 * .env.template sets PROCESSING_QUEUE_URL, and that alone selects S3, SQS
 * and DynamoDB (DIARIST_BACKEND=local|aws overrides the guess). */
static int aws_wanted(void) {
    const char *b = getenv("DIARIST_BACKEND");
    if (b && *b) return !strcmp(b, "aws");
    const char *q = getenv("PROCESSING_QUEUE_URL");
    return q && *q;
}

static int local_urls(char *store_url, char *db_url, char *queue_url, size_t cap, char *msg,
                      size_t msgcap) {
    const char *data = env_or("DIARIST_DATA", "diarist-data");
    const char *bucket = env_or("AUDIO_BUCKET_NAME", "audio-files");
    if (mkdir_p(data) != 0)
        return di_fail(msg, msgcap, DI_EIO, "cannot create data directory %s: %s", data,
                       strerror(errno));
    /* Absolute paths, so a worker started elsewhere finds the same files. */
    char abs[4096];
    if (!realpath(data, abs)) return di_fail(msg, msgcap, DI_EIO, "cannot resolve %s", data);
    snprintf(store_url, cap, "file://%s/blobs/%s", abs, bucket);
    snprintf(db_url, cap, "sqlite://%s/diarist.db", abs);
    snprintf(queue_url, cap, "sqlite://%s/diarist.db?queue=audio-processing-queue", abs);
    return 0;
}

static void aws_urls(char *store_url, char *db_url, char *queue_url, size_t cap) {
    snprintf(store_url, cap, "s3://%s", env_or("AUDIO_BUCKET_NAME", "audio-files"));
    snprintf(db_url, cap, "dynamodb://%s?notes=%s",
             env_or("TRANSCRIPTION_TABLE", "AudioTranscriptions"),
             env_or("NOTES_TABLE", "DiaryNotes"));
    snprintf(queue_url, cap, "%s", env_or("PROCESSING_QUEUE_URL", ""));
}

int cli_backends_open(CliBackends *b, char *msg, size_t cap) {
    memset(b, 0, sizeof *b);
    char store_url[8192], db_url[8192], queue_url[8192];
    int rc = 0;
    if (aws_wanted()) {
        aws_urls(store_url, db_url, queue_url, sizeof store_url);
        if (!*queue_url && !getenv("DIARIST_QUEUE_URL"))
            return di_fail(msg, cap, DI_EINVAL,
                           "DIARIST_BACKEND=aws needs PROCESSING_QUEUE_URL (see diarist init-aws)");
    } else {
        rc = local_urls(store_url, db_url, queue_url, sizeof store_url, msg, cap);
    }
    if (!rc) rc = store_open(env_or("DIARIST_STORE_URL", store_url), &b->store, msg, cap);
    if (!rc) rc = meta_open(env_or("DIARIST_META_URL", db_url), &b->meta, msg, cap);
    if (!rc) rc = queue_open(env_or("DIARIST_QUEUE_URL", queue_url), &b->queue, msg, cap);
    if (rc) cli_backends_close(b);
    return rc;
}

void cli_backends_close(CliBackends *b) {
    if (!b) return;
    queue_close(b->queue);
    meta_close(b->meta);
    store_close(b->store);
    memset(b, 0, sizeof *b);
}
