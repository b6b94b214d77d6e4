/* Helpers shared by the test programs: where the shared golden data and the
 * built binary are, scratch space, whole-file reads. */
#ifndef DIARIST_TESTUTIL_H
#define DIARIST_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file under ../shared (env DIARIST_SHARED); static buffer. */
const char *tu_shared(const char *rel);
/* A fresh scratch directory for this test program (env DIARIST_TMP). */
const char *tu_tmpdir(void);
/* Path inside tu_tmpdir(); static rotating buffers. */
const char *tu_tmp(const char *name);
/* Reads a whole file, followed by a 0 byte not counted in *size; NULL on
 * failure. Caller frees. */
void *tu_read(const char *path, size_t *size);
/* Writes a file; 0 on success. */
int tu_write(const char *path, const void *data, size_t size);
/* Runs a shell command, returns its exit status (or -1). */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The diarist binary under test (env DIARIST_BIN). */
const char *tu_bin(void);

/* A synthetic model of a preset size (whisper_synth_preset) with the
 * shared micro model's vocabulary, written to a scratch file and loaded.
 * Fails the test on error. */
struct WhisperModel;
struct WhisperModel *tu_synth_model(const char *preset, unsigned seed, const char *file);

/* The AWS-protocol servers of tests/aws (s3rver, local-aws-sqs, dynalite)
 * on loopback, started with node for one test program. which: "s3 sqs
 * dynamodb" or a subset. Ports are 0 for servers not started. The
 * environment gets dummy credentials, region us-east-1 and S3_ENDPOINT,
 * SQS_ENDPOINT, DYNAMODB_ENDPOINT for the servers started. 0, or -1 (with
 * the reason printed) when node or the npm packages are missing. */
typedef struct {
    int pid;
    int s3, sqs, dynamodb;
} TuEmulators;
int tu_emulators_start(const char *which, TuEmulators *out);
void tu_emulators_stop(TuEmulators *e);

#endif
