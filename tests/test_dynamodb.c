/* Tests for the DynamoDB backend of the job records (src/meta/dynamodb.c)
 * against dynalite on loopback: every field round trips, state changes are
 * conditional (a stale worker writes nothing; racing processes each win a
 * step exactly once), a 1 MB transcript spills to the blob store and stays
 * whole, and the items are interoperable with the seed both ways: an item
 * written exactly as the seed's API writes it is read and moved on, and the
 * items diarist writes are read raw in the seed's layout. */
#include "testutil.h"

#include "aws/aws.h"
#include "core/core.h"
#include "meta/meta.h"
#include "notes/notes.h"
#include "queue/queue.h"
#include "store/store.h"
#include "whisper/whisper.h"
#include "worker/worker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char msg[512];
static TuEmulators emu;
static Aws *raw_aws;
static char raw_url[256];
static char meta_url[4200];
static char spill_dir[4096];

/* ---- Raw DynamoDB, the way the seed (or a person with the CLI) sees it ---- */

/* Sends one request; returns the HTTP status, *out the answer's JSON. */
static long raw(const char *op, json_t *req, json_t **out) {
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    assert_non_null(body);
    char target[128];
    snprintf(target, sizeof target, "X-Amz-Target: DynamoDB_20120810.%s", op);
    const char *headers[] = {target, "Content-Type: application/x-amz-json-1.0", NULL};
    AwsRequest r = {.method = "POST",
                    .service = "dynamodb",
                    .url = raw_url,
                    .headers = headers,
                    .body = body,
                    .body_len = strlen(body)};
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    int rc = aws_request(raw_aws, &r, &resp, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "aws_request: %s\n", msg);
    assert_int_equal(rc, 0);
    free(body);
    if (out) *out = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
    long status = resp.status;
    if (status != 200) fprintf(stderr, "%s: %ld %s\n", op, status, resp.body ? resp.body : "");
    aws_response_free(&resp);
    return status;
}

static void create_table(const char *name) {
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s}], s:s}", "TableName", name,
                            "AttributeDefinitions", "AttributeName", "job_id", "AttributeType", "S",
                            "KeySchema", "AttributeName", "job_id", "KeyType", "HASH",
                            "BillingMode", "PAY_PER_REQUEST");
    assert_int_equal(raw("CreateTable", req, NULL), 200);
}

/* The raw item (caller decrefs), NULL when there is none. */
static json_t *raw_get(const char *table, const char *id) {
    json_t *out = NULL;
    json_t *req = json_pack("{s:s, s:{s:{s:s}}, s:b}", "TableName", table, "Key", "job_id", "S", id,
                            "ConsistentRead", 1);
    assert_int_equal(raw("GetItem", req, &out), 200);
    json_t *item = json_incref(json_object_get(out, "Item"));
    json_decref(out);
    return item;
}

static const char *raw_s(json_t *item, const char *name) {
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

static const char *raw_n(json_t *item, const char *name) {
    return json_string_value(json_object_get(json_object_get(item, name), "N"));
}

/* DynamoDB's size of an item: names plus values in bytes (numbers counted
 * by their text, an upper bound). */
static size_t item_size(json_t *item) {
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(item, k, v) {
        const char *s = json_string_value(json_object_get(v, "S"));
        if (!s) s = json_string_value(json_object_get(v, "N"));
        n += strlen(k) + (s ? strlen(s) : 0);
    }
    return n;
}

/* One S3 request on the bucket or an object in it; the HTTP status. */
static long s3_request(const char *method, const char *bucket, const char *key) {
    char ep[200], url[600];
    int custom;
    assert_int_equal(aws_endpoint(raw_aws, "s3", ep, sizeof ep, &custom), 0);
    snprintf(url, sizeof url, "%s/%s%s%s", ep, bucket, key ? "/" : "", key ? key : "");
    AwsRequest r = {.method = method, .service = "s3", .url = url};
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    int rc = aws_request(raw_aws, &r, &resp, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "aws_request: %s\n", msg);
    assert_int_equal(rc, 0);
    long status = resp.status;
    aws_response_free(&resp);
    return status;
}

/* ---- Fixtures ------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    if (tu_emulators_start("dynamodb s3", &emu) != 0) return -1;
    if (aws_open(&raw_aws, msg, sizeof msg) != 0) return -1;
    int custom;
    char ep[200];
    if (aws_endpoint(raw_aws, "dynamodb", ep, sizeof ep, &custom) != 0) return -1;
    snprintf(raw_url, sizeof raw_url, "%s/", ep);
    snprintf(spill_dir, sizeof spill_dir, "%s", tu_tmp("spill"));
    mkdir(spill_dir, 0777);
    snprintf(meta_url, sizeof meta_url, "dynamodb://Jobs?notes=Notes&spill=file://%s", spill_dir);
    create_table("Jobs");
    create_table("Notes");
    return s3_request("PUT", "audio-files", NULL) == 200 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    aws_close(raw_aws);
    tu_emulators_stop(&emu);
    return 0;
}

static Meta *open_url(const char *url) {
    Meta *m = NULL;
    int rc = meta_open(url, &m, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "meta_open: %s\n", msg);
    assert_int_equal(rc, 0);
    return m;
}

static Meta *open_meta(void) {
    return open_url(meta_url);
}

static void create_job(Meta *m, const char *id) {
    char path[256];
    snprintf(path, sizeof path, "uploads/%s/a.wav", id);
    Job j = {.job_id = (char *)id, .file_name = "a.wav", .file_path = path, .state = JOB_QUEUED};
    int rc = meta_create(m, &j, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "meta_create: %s\n", msg);
    assert_int_equal(rc, 0);
}

static int transition(Meta *m, const char *id, JobState from, JobState to, const char *err) {
    return meta_transition(m, id, JOB_MASK(from), to, err, msg, sizeof msg);
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_roundtrip(void **state) {
    (void)state;
    Meta *m = open_meta();
    double before = meta_now();
    const char *id = "9b2f0c1e-0000-4000-8000-000000000001";
    Job in = {.job_id = (char *)id,
              .file_name = "my_memo.m4a",
              .file_path = "uploads/9b2f0c1e-0000-4000-8000-000000000001/my_memo.m4a",
              .state = JOB_QUEUED,
              .callback_url = "http://127.0.0.1:9/done"};
    assert_int_equal(meta_create(m, &in, msg, sizeof msg), 0);
    assert_int_equal(meta_create(m, &in, msg, sizeof msg), DI_EINVAL);
    assert_non_null(strstr(msg, "already exists"));

    assert_int_equal(transition(m, id, JOB_QUEUED, JOB_DOWNLOADING, NULL), 0);
    const char *text = "Heute war ein guter Tag \xe2\x80\x94 caf\xc3\xa9.";
    assert_int_equal(
        meta_set_transcript(m, id, text, "de", 421.5, "{\"segments\":[]}", msg, sizeof msg), 0);
    assert_int_equal(meta_set_note_error(m, id, "model timed out", msg, sizeof msg), 0);
    Job out;
    assert_int_equal(meta_get(m, id, &out, msg, sizeof msg), 0);
    assert_string_equal(out.note_error, "model timed out");
    assert_null(out.note_markdown);
    assert_true(out.note_created_at == 0);
    meta_job_free(&out);
    assert_int_equal(meta_put_note(m, id, "# Tuesday", "{\"title\":\"Tuesday\"}", 1700000000.25,
                                   msg, sizeof msg),
                     0);
    assert_int_equal(transition(m, id, JOB_DOWNLOADING, JOB_ERROR, "disk full"), 0);

    assert_int_equal(meta_get(m, id, &out, msg, sizeof msg), 0);
    assert_string_equal(out.job_id, id);
    assert_string_equal(out.file_name, "my_memo.m4a");
    assert_string_equal(out.file_path, in.file_path);
    assert_int_equal(out.state, JOB_ERROR);
    assert_string_equal(out.transcription, text);
    assert_string_equal(out.error, "disk full");
    assert_string_equal(out.language, "de");
    assert_true(out.duration == 421.5);
    assert_string_equal(out.segments_json, "{\"segments\":[]}");
    assert_string_equal(out.note_json, "{\"title\":\"Tuesday\"}");
    assert_string_equal(out.note_markdown, "# Tuesday");
    assert_true(out.note_created_at == 1700000000.25);
    assert_null(out.note_error); /* a stored note clears the earlier failure */
    assert_true(out.created_at >= before - 1 && out.created_at <= meta_now() + 1);
    assert_true(out.updated_at >= out.created_at);
    assert_int_equal(out.attempts, 1);
    assert_string_equal(out.callback_url, "http://127.0.0.1:9/done");
    meta_job_free(&out);
    meta_close(m);
}

static void test_bad_urls(void **state) {
    (void)state;
    Meta *m = NULL;
    assert_int_equal(meta_open("dynamodb://Jobs?bogus=1", &m, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(meta_open("dynamodb://ab", &m, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(meta_open("dynamodb://Jobs?notes=%zz", &m, msg, sizeof msg), DI_EINVAL);
    assert_null(m);
    /* A table nobody created: the message says what to run. */
    m = open_url("dynamodb://NoSuchTable?notes=Notes");
    Job j;
    assert_int_equal(meta_get(m, "x", &j, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "init-aws"));
    meta_close(m);
    /* Defaults from the seed's environment. */
    setenv("TRANSCRIPTION_TABLE", "Jobs", 1);
    setenv("NOTES_TABLE", "Notes", 1);
    m = open_url("dynamodb://");
    assert_int_equal(meta_get(m, "absent", &j, msg, sizeof msg), DI_ENOTFOUND);
    meta_close(m);
    unsetenv("TRANSCRIPTION_TABLE");
    unsetenv("NOTES_TABLE");
}

static void test_transitions(void **state) {
    (void)state;
    Meta *m = open_meta();
    create_job(m, "t1");
    static const JobState order[] = {JOB_QUEUED, JOB_DOWNLOADING, JOB_TRANSCRIBING,
                                     JOB_GENERATING_NOTE, JOB_COMPLETED};
    for (int i = 0; i + 1 < 5; i++) {
        assert_int_equal(transition(m, "t1", order[i], order[i + 1], NULL), 0);
        json_t *item = raw_get("Jobs", "t1");
        assert_string_equal(raw_s(item, "job_status"), job_state_name(order[i + 1]));
        json_decref(item);
    }
    /* A stale worker: the record moved on, so nothing is written. */
    json_t *before = raw_get("Jobs", "t1");
    assert_int_equal(transition(m, "t1", JOB_DOWNLOADING, JOB_ERROR, "late"), META_STALE);
    assert_int_equal(meta_transition(m, "t1", JOB_MASK(JOB_QUEUED) | JOB_MASK(JOB_TRANSCRIBING),
                                     JOB_QUEUED, NULL, msg, sizeof msg),
                     META_STALE);
    json_t *after = raw_get("Jobs", "t1");
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    assert_int_equal(transition(m, "nope", JOB_QUEUED, JOB_DOWNLOADING, NULL), DI_ENOTFOUND);
    assert_null(raw_get("Jobs", "nope")); /* a transition never creates an item */

    /* The reserved word `error`: set, then cleared. */
    assert_int_equal(transition(m, "t1", JOB_COMPLETED, JOB_ERROR, "boom"), 0);
    json_t *item = raw_get("Jobs", "t1");
    assert_string_equal(raw_s(item, "error"), "boom");
    json_decref(item);
    assert_int_equal(transition(m, "t1", JOB_ERROR, JOB_QUEUED, NULL), 0);
    item = raw_get("Jobs", "t1");
    assert_null(json_object_get(item, "error"));
    assert_string_equal(raw_s(item, "job_status"), "queued");
    json_decref(item);
    assert_int_equal(transition(m, "t1", JOB_QUEUED, JOB_DOWNLOADING, NULL), 0);
    Job j;
    assert_int_equal(meta_get(m, "t1", &j, msg, sizeof msg), 0);
    assert_int_equal(j.attempts, 2);
    meta_job_free(&j);
    meta_close(m);
}

static void test_idempotent_missing_delete(void **state) {
    (void)state;
    Meta *m = open_meta();
    create_job(m, "i1");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(meta_set_transcript(m, "i1", "hello", "en", 2, NULL, msg, sizeof msg), 0);
        assert_int_equal(meta_put_note(m, "i1", "# Note", NULL, 1700000000, msg, sizeof msg), 0);
    }
    Job a, b;
    assert_int_equal(meta_get(m, "i1", &a, msg, sizeof msg), 0);
    assert_int_equal(meta_set_transcript(m, "i1", "hello", "en", 2, NULL, msg, sizeof msg), 0);
    assert_int_equal(meta_get(m, "i1", &b, msg, sizeof msg), 0);
    assert_string_equal(a.transcription, b.transcription);
    assert_string_equal(a.note_markdown, "# Note");
    assert_null(a.segments_json);
    assert_null(a.note_json);
    meta_job_free(&a);
    meta_job_free(&b);
    /* NULLs remove attributes. */
    assert_int_equal(meta_set_transcript(m, "i1", NULL, NULL, 0, NULL, msg, sizeof msg), 0);
    json_t *item = raw_get("Jobs", "i1");
    assert_null(json_object_get(item, "transcription"));
    assert_null(json_object_get(item, "language"));
    json_decref(item);
    assert_int_equal(meta_set_note_error(m, "i1", "x", msg, sizeof msg), 0);
    assert_int_equal(meta_set_note_error(m, "i1", "x", msg, sizeof msg), 0);

    Job j;
    assert_int_equal(meta_get(m, "nope", &j, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(meta_set_transcript(m, "nope", "x", "en", 1, NULL, msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_int_equal(meta_put_note(m, "nope", "x", NULL, 0, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(meta_set_note_error(m, "nope", "x", msg, sizeof msg), DI_ENOTFOUND);
    assert_null(raw_get("Jobs", "nope"));
    assert_null(raw_get("Notes", "nope"));

    assert_int_equal(meta_delete(m, "i1", msg, sizeof msg), 0);
    assert_int_equal(meta_get(m, "i1", &j, msg, sizeof msg), DI_ENOTFOUND);
    assert_null(raw_get("Notes", "i1"));
    assert_int_equal(meta_delete(m, "i1", msg, sizeof msg), 0);
    meta_close(m);
}

static void test_counts(void **state) {
    (void)state;
    create_table("CountJobs");
    create_table("CountNotes");
    Meta *m = open_url("dynamodb://CountJobs?notes=CountNotes");
    int64_t counts[JOB_STATE_COUNT];
    assert_int_equal(meta_count_by_state(m, counts, msg, sizeof msg), 0);
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        assert_int_equal(counts[i], 0);
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "c%d", i);
        create_job(m, id);
    }
    assert_int_equal(transition(m, "c0", JOB_QUEUED, JOB_DOWNLOADING, NULL), 0);
    assert_int_equal(transition(m, "c1", JOB_QUEUED, JOB_ERROR, "bad"), 0);
    assert_int_equal(transition(m, "c2", JOB_QUEUED, JOB_ERROR, "bad"), 0);
    assert_int_equal(meta_count_by_state(m, counts, msg, sizeof msg), 0);
    assert_int_equal(counts[JOB_QUEUED], 2);
    assert_int_equal(counts[JOB_DOWNLOADING], 1);
    assert_int_equal(counts[JOB_ERROR], 2);
    assert_int_equal(counts[JOB_COMPLETED], 0);
    meta_close(m);
}

static int file_exists(const char *rel) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", spill_dir, rel);
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A text of n bytes with two- and three-byte characters, so a cut that
 * splits one would show. */
static char *big_text(size_t n) {
    static const char piece[] = "Sch\xc3\xb6n \xe2\x82\xac ";
    char *t = malloc(n + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = piece[i % (sizeof piece - 1)];
    t[n] = 0;
    t[n - 3] = 'x', t[n - 2] = 'y', t[n - 1] = 'z'; /* no split character at the end */
    return t;
}

static void test_large_transcript(void **state) {
    (void)state;
    Meta *m = open_meta();
    create_job(m, "big");
    char *text = big_text(1000 * 1000 + 1), *segs = big_text(300 * 1000);
    assert_int_equal(meta_set_transcript(m, "big", text, "de", 3600, segs, msg, sizeof msg), 0);
    Job j;
    assert_int_equal(meta_get(m, "big", &j, msg, sizeof msg), 0);
    assert_string_equal(j.transcription, text);
    assert_string_equal(j.segments_json, segs);
    meta_job_free(&j);

    json_t *item = raw_get("Jobs", "big");
    assert_true(item_size(item) < 400 * 1024);
    const char *preview = raw_s(item, "transcription");
    assert_non_null(preview);
    assert_true(strlen(preview) > 1000 && strlen(preview) < strlen(text));
    assert_memory_equal(preview, text, strlen(preview));
    assert_string_equal(raw_s(item, "transcript_key"), "transcripts/big/transcript.txt");
    assert_string_equal(raw_s(item, "segments_key"), "transcripts/big/segments.json");
    assert_null(json_object_get(item, "segments_json"));
    assert_string_equal(raw_n(item, "transcript_bytes"), "1000001");
    json_decref(item);
    assert_true(file_exists("transcripts/big/transcript.txt"));

    /* A huge note spills the same way. */
    char *note = big_text(500 * 1000);
    assert_int_equal(meta_put_note(m, "big", note, "{\"title\":\"t\"}", 0, msg, sizeof msg), 0);
    assert_int_equal(meta_get(m, "big", &j, msg, sizeof msg), 0);
    assert_string_equal(j.note_markdown, note);
    assert_string_equal(j.note_json, "{\"title\":\"t\"}");
    meta_job_free(&j);
    item = raw_get("Notes", "big");
    assert_true(item_size(item) < 400 * 1024);
    assert_non_null(raw_s(item, "note_key"));
    json_decref(item);

    /* Back to a small transcript: inline again, the blobs are gone. */
    assert_int_equal(meta_set_transcript(m, "big", "short", "de", 1, "[]", msg, sizeof msg), 0);
    item = raw_get("Jobs", "big");
    assert_null(json_object_get(item, "transcript_key"));
    assert_null(json_object_get(item, "segments_key"));
    assert_string_equal(raw_s(item, "transcription"), "short");
    assert_string_equal(raw_s(item, "segments_json"), "[]");
    json_decref(item);
    assert_false(file_exists("transcripts/big/transcript.txt"));
    assert_false(file_exists("transcripts/big/segments.json"));

    /* Spilled again, then deleted: nothing stays behind. */
    assert_int_equal(meta_set_transcript(m, "big", text, "de", 3600, segs, msg, sizeof msg), 0);
    assert_true(file_exists("transcripts/big/transcript.txt"));
    assert_int_equal(meta_delete(m, "big", msg, sizeof msg), 0);
    assert_false(file_exists("transcripts/big/transcript.txt"));
    assert_false(file_exists("transcripts/big/segments.json"));
    assert_false(file_exists("transcripts/big/note.md"));
    free(text);
    free(segs);
    free(note);
    meta_close(m);
}

/* The default spill store is the seed's audio bucket on S3. */
static void test_spill_to_s3(void **state) {
    (void)state;
    Meta *m = open_url("dynamodb://Jobs?notes=Notes");
    create_job(m, "s3big");
    char *text = big_text(900 * 1000);
    assert_int_equal(meta_set_transcript(m, "s3big", text, "de", 60, NULL, msg, sizeof msg), 0);
    assert_int_equal(s3_request("HEAD", "audio-files", "transcripts/s3big/transcript.txt"), 200);
    Job j;
    assert_int_equal(meta_get(m, "s3big", &j, msg, sizeof msg), 0);
    assert_string_equal(j.transcription, text);
    assert_null(j.segments_json);
    meta_job_free(&j);
    json_t *item = raw_get("Jobs", "s3big");
    assert_null(json_object_get(item, "segments_key"));
    json_decref(item);
    assert_int_equal(meta_delete(m, "s3big", msg, sizeof msg), 0);
    assert_int_equal(s3_request("HEAD", "audio-files", "transcripts/s3big/transcript.txt"), 404);
    free(text);
    meta_close(m);
}

/* Bytes that are not UTF-8 cannot be a DynamoDB string: they are kept as
 * U+FFFD instead of failing the job. */
static void test_invalid_utf8(void **state) {
    (void)state;
    Meta *m = open_meta();
    create_job(m, "u1");
    assert_int_equal(meta_set_transcript(m, "u1",
                                         "a\xff"
                                         "b\xc3",
                                         "en", 1, NULL, msg, sizeof msg),
                     0);
    Job j;
    assert_int_equal(meta_get(m, "u1", &j, msg, sizeof msg), 0);
    assert_string_equal(j.transcription, "a\xef\xbf\xbd"
                                         "b\xef\xbf\xbd");
    meta_job_free(&j);
    meta_close(m);
}

/* Interop, seed -> diarist: the seed's API writes exactly these four
 * attributes at upload; diarist's worker must read the item and move it
 * through the life cycle. Then diarist -> seed: what diarist wrote is in
 * the seed's layout. */
static void test_seed_interop(void **state) {
    (void)state;
    json_t *put =
        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}", "TableName", "Jobs", "Item",
                  "job_id", "S", "seed-1", "file_name", "S", "memo.mp3", "file_path", "S",
                  "uploads/seed-1/memo.mp3", "job_status", "S", "queued");
    assert_int_equal(raw("PutItem", put, NULL), 200);
    Meta *m = open_meta();
    Job j;
    assert_int_equal(meta_get(m, "seed-1", &j, msg, sizeof msg), 0);
    assert_string_equal(j.job_id, "seed-1");
    assert_string_equal(j.file_name, "memo.mp3");
    assert_string_equal(j.file_path, "uploads/seed-1/memo.mp3");
    assert_int_equal(j.state, JOB_QUEUED);
    assert_null(j.transcription);
    assert_null(j.error);
    assert_int_equal(j.attempts, 0);
    assert_true(j.created_at == 0 && j.duration == 0);
    meta_job_free(&j);

    assert_int_equal(transition(m, "seed-1", JOB_QUEUED, JOB_DOWNLOADING, NULL), 0);
    assert_int_equal(transition(m, "seed-1", JOB_DOWNLOADING, JOB_TRANSCRIBING, NULL), 0);
    assert_int_equal(meta_set_transcript(m, "seed-1", "I walked to the sea.", "en", 7.5,
                                         "{\"segments\":[]}", msg, sizeof msg),
                     0);
    assert_int_equal(transition(m, "seed-1", JOB_TRANSCRIBING, JOB_GENERATING_NOTE, NULL), 0);
    assert_int_equal(meta_put_note(m, "seed-1", "**Date:** today\n\n**Mood:** calm",
                                   "{\"title\":\"Sea\"}", 1700000123, msg, sizeof msg),
                     0);
    assert_int_equal(transition(m, "seed-1", JOB_GENERATING_NOTE, JOB_COMPLETED, NULL), 0);

    /* What a reader written to the seed's layout finds. */
    json_t *item = raw_get("Jobs", "seed-1");
    assert_string_equal(raw_s(item, "job_id"), "seed-1");
    assert_string_equal(raw_s(item, "file_name"), "memo.mp3");
    assert_string_equal(raw_s(item, "file_path"), "uploads/seed-1/memo.mp3");
    assert_string_equal(raw_s(item, "job_status"), "completed");
    assert_string_equal(raw_s(item, "transcription"), "I walked to the sea.");
    assert_null(json_object_get(item, "error"));
    json_decref(item);
    json_t *note = raw_get("Notes", "seed-1");
    assert_string_equal(raw_s(note, "job_id"), "seed-1");
    assert_string_equal(raw_s(note, "diary_note"), "**Date:** today\n\n**Mood:** calm");
    assert_string_equal(raw_n(note, "created_at"), "1700000123");
    json_decref(note);

    /* A failed job carries its reason in the seed's `error` attribute. */
    create_job(m, "seed-2");
    assert_int_equal(transition(m, "seed-2", JOB_QUEUED, JOB_ERROR, "not audio"), 0);
    item = raw_get("Jobs", "seed-2");
    assert_string_equal(raw_s(item, "job_status"), "error");
    assert_string_equal(raw_s(item, "error"), "not audio");
    assert_string_equal(raw_s(item, "file_path"), "uploads/seed-2/a.wav");
    json_decref(item);
    meta_close(m);
}

/* Interop through the worker: a job created exactly as the seed creates
 * it (the object in the audio bucket, the four-attribute item, the seed's
 * message body byte for byte) is processed by diarist's worker on these
 * tables, and the finished items are what the seed's /result reads. */
static void test_worker_processes_seed_job(void **state) {
    (void)state;
    WhisperModel *model = NULL;
    NoteGenerator *notes = NULL;
    NoteConfig nc = notes_config_from_env();
    assert_int_equal(whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &model,
                                        msg, sizeof msg),
                     0);
    assert_int_equal(notes_extractive_create(&nc, &notes, msg, sizeof msg), 0);
    Store *store;
    Queue *queue;
    assert_int_equal(store_open("s3://audio-files", &store, msg, sizeof msg), 0);
    char qurl[4200];
    snprintf(qurl, sizeof qurl, "sqlite://%s?queue=audio-processing-queue", tu_tmp("queue.db"));
    assert_int_equal(queue_open(qurl, &queue, msg, sizeof msg), 0);
    Meta *m = open_meta();

    const char *id = "5eed0000-0000-4000-8000-000000000001";
    size_t n;
    void *wav = tu_read(tu_shared("samples/jfk.wav"), &n);
    assert_non_null(wav);
    assert_int_equal(store_put(store, "uploads/5eed0000-0000-4000-8000-000000000001/jfk.wav", wav,
                               n, msg, sizeof msg),
                     0);
    free(wav);
    json_t *put = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}", "TableName", "Jobs",
                            "Item", "job_id", "S", id, "file_name", "S", "jfk.wav", "file_path",
                            "S", "uploads/5eed0000-0000-4000-8000-000000000001/jfk.wav",
                            "job_status", "S", "queued");
    assert_int_equal(raw("PutItem", put, NULL), 200);
    const char *body = "{\"job_id\": \"5eed0000-0000-4000-8000-000000000001\", \"file_path\": "
                       "\"uploads/5eed0000-0000-4000-8000-000000000001/jfk.wav\", "
                       "\"file_name\": \"jfk.wav\"}";
    assert_int_equal(queue_send(queue, body, strlen(body), NULL, 0, msg, sizeof msg), 0);

    WorkerConfig c = worker_default_config();
    c.store = store;
    c.meta = m;
    c.queue = queue;
    c.model = model;
    c.notes = notes;
    c.params.temperature_increment = 0;
    c.params.sample_len = 16;
    c.n_threads = 2;
    c.tmp_dir = tu_tmpdir();
    c.wait_s = 0.3;
    c.stop_check_s = 0.1;
    Worker *w;
    assert_int_equal(worker_create(&c, &w, msg, sizeof msg), 0);
    for (int i = 0; i < 50; i++) {
        QueueDepth d;
        assert_int_equal(queue_depth(queue, &d, msg, sizeof msg), 0);
        if (d.visible == 0 && d.in_flight == 0) break;
        assert_true(worker_poll_once(w, msg, sizeof msg) >= 0);
    }
    worker_free(w);

    json_t *item = raw_get("Jobs", id);
    assert_string_equal(raw_s(item, "job_status"), "completed");
    assert_non_null(raw_s(item, "transcription"));
    assert_true(strlen(raw_s(item, "transcription")) > 0);
    assert_null(json_object_get(item, "error"));
    assert_string_equal(raw_s(item, "file_name"), "jfk.wav");
    json_decref(item);
    json_t *note = raw_get("Notes", id);
    assert_non_null(raw_s(note, "diary_note"));
    assert_non_null(strstr(raw_s(note, "diary_note"), "Mood"));
    assert_non_null(raw_n(note, "created_at"));
    assert_true(strtod(raw_n(note, "created_at"), NULL) > 1.6e9);
    json_decref(note);

    meta_close(m);
    queue_close(queue);
    store_close(store);
    notes_generator_free(notes);
    whisper_model_free(model);
}

/* Racing processes: for each step of the life cycle, N processes try the
 * same transition at once; exactly one must win. */
#define N_RACERS 4

static int racer(const char *id, JobState from, JobState to, int gate) {
    Meta *m;
    if (meta_open(meta_url, &m, NULL, 0) < 0) return 10;
    char c;
    if (read(gate, &c, 1) != 1) return 11;
    int rc = meta_transition(m, id, JOB_MASK(from), to, NULL, NULL, 0);
    meta_close(m);
    return rc == 0 ? 0 : rc == META_STALE ? 1 : 12;
}

static void test_racing_processes(void **state) {
    (void)state;
    Meta *m = open_meta();
    create_job(m, "race");
    static const JobState order[] = {JOB_QUEUED, JOB_DOWNLOADING, JOB_TRANSCRIBING,
                                     JOB_GENERATING_NOTE, JOB_COMPLETED};
    for (int step = 0; step + 1 < 5; step++) {
        int gate[2];
        assert_int_equal(pipe(gate), 0);
        pid_t pids[N_RACERS];
        for (int i = 0; i < N_RACERS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(gate[1]);
                _exit(racer("race", order[step], order[step + 1], gate[0]));
            }
        }
        close(gate[0]);
        assert_int_equal(write(gate[1], "gggg", N_RACERS), N_RACERS); /* open the gate */
        close(gate[1]);
        int won = 0, lost = 0;
        for (int i = 0; i < N_RACERS; i++) {
            int st;
            assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
            assert_true(WIFEXITED(st));
            won += WEXITSTATUS(st) == 0;
            lost += WEXITSTATUS(st) == 1;
        }
        assert_int_equal(won, 1);
        assert_int_equal(lost, N_RACERS - 1);
    }
    Job j;
    assert_int_equal(meta_get(m, "race", &j, msg, sizeof msg), 0);
    assert_int_equal(j.state, JOB_COMPLETED);
    assert_int_equal(j.attempts, 1);
    meta_job_free(&j);
    meta_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_transitions),      cmocka_unit_test(test_idempotent_missing_delete),
        cmocka_unit_test(test_counts),           cmocka_unit_test(test_large_transcript),
        cmocka_unit_test(test_spill_to_s3),      cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_seed_interop),     cmocka_unit_test(test_worker_processes_seed_job),
        cmocka_unit_test(test_racing_processes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
