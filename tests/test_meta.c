/* Tests for the job records (src/meta) through the sqlite backend: every
 * field round trips, creates do not overwrite, transitions are conditional,
 * notes are upserted, and several processes can share one database file
 * without losing writes. */
#include "testutil.h"

#include "core/core.h"
#include "meta/meta.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char msg[512];

static const char *db_path(const char *name) {
    return tu_tmp(name);
}

static Meta *open_meta(const char *name) {
    char url[4096];
    snprintf(url, sizeof url, "sqlite://%s", db_path(name));
    Meta *m = NULL;
    int rc = meta_open(url, &m, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "meta_open: %s\n", msg);
    assert_int_equal(rc, 0);
    return m;
}

static void create_job(Meta *m, const char *id) {
    char path[256];
    snprintf(path, sizeof path, "uploads/%s/a.wav", id);
    Job j = {.job_id = (char *)id, .file_name = "a.wav", .file_path = path, .state = JOB_QUEUED};
    assert_int_equal(meta_create(m, &j, msg, sizeof msg), 0);
}

/* Rows in a table, counted through a separate connection, to see what the
 * backend really stored. */
static int count_rows(const char *name, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path(name), &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_roundtrip(void **state) {
    (void)state;
    Meta *m = open_meta("rt.db");
    double before = meta_now();
    Job in = {.job_id = "9b2f0c1e-0000-4000-8000-000000000001",
              .file_name = "my_memo.m4a",
              .file_path = "uploads/9b2f0c1e-0000-4000-8000-000000000001/my_memo.m4a",
              .state = JOB_QUEUED,
              .callback_url = "http://127.0.0.1:9/done"};
    assert_int_equal(meta_create(m, &in, msg, sizeof msg), 0);

    /* A transcript large enough to matter. */
    size_t big = 300000;
    char *text = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        text[i] = (char)('a' + i % 26);
    text[big] = 0;
    const char *id = in.job_id;
    assert_int_equal(
        meta_transition(m, id, JOB_MASK(JOB_QUEUED), JOB_DOWNLOADING, NULL, msg, sizeof msg), 0);
    assert_int_equal(
        meta_set_transcript(m, id, text, "en", 421.5, "{\"segments\":[]}", msg, sizeof msg), 0);
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
    assert_int_equal(
        meta_transition(m, id, JOB_MASK(JOB_DOWNLOADING), JOB_ERROR, "disk full", msg, sizeof msg),
        0);

    assert_int_equal(meta_get(m, id, &out, msg, sizeof msg), 0);
    assert_string_equal(out.job_id, id);
    assert_string_equal(out.file_name, "my_memo.m4a");
    assert_string_equal(out.file_path, in.file_path);
    assert_int_equal(out.state, JOB_ERROR);
    assert_string_equal(out.transcription, text);
    assert_string_equal(out.error, "disk full");
    assert_string_equal(out.language, "en");
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
    meta_job_free(&out); /* zeroed: a second free is harmless */
    meta_job_free(NULL);
    free(text);

    /* Absent and invalid. */
    assert_int_equal(meta_get(m, "nope", &out, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(meta_get(m, "", &out, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(meta_set_transcript(m, "nope", "x", "en", 1, NULL, msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_int_equal(meta_put_note(m, "nope", "x", NULL, 0, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(count_rows("rt.db", "SELECT COUNT(*) FROM notes WHERE job_id = 'nope'"), 0);
    assert_int_equal(meta_transition(m, "nope", JOB_MASK_ANY, JOB_QUEUED, NULL, msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_int_equal(meta_transition(m, id, 0, JOB_QUEUED, NULL, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(meta_transition(m, id, JOB_MASK_ANY, JOB_STATE_COUNT, NULL, msg, sizeof msg),
                     DI_EINVAL);
    Meta *bad = NULL;
    assert_int_equal(meta_open("mysql://x", &bad, msg, sizeof msg), DI_EINVAL);
    assert_null(bad);
    meta_close(m);
    meta_close(NULL);
}

static void test_states_and_names(void **state) {
    (void)state;
    const char *names[] = {"queued",          "downloading", "transcribing",
                           "generating_note", "completed",   "error"};
    for (int i = 0; i < JOB_STATE_COUNT; i++) {
        assert_string_equal(job_state_name((JobState)i), names[i]);
        JobState s;
        assert_int_equal(job_state_parse(names[i], &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(job_state_parse("done", NULL), DI_EINVAL);
    assert_string_equal(job_state_name(JOB_STATE_COUNT), "unknown");
}

static void test_duplicate_and_conditional(void **state) {
    (void)state;
    Meta *m = open_meta("cond.db");
    create_job(m, "j1");
    Job dup = {.job_id = "j1", .file_name = "b.wav", .file_path = "uploads/j1/b.wav"};
    assert_int_equal(meta_create(m, &dup, msg, sizeof msg), DI_EINVAL);
    assert_non_null(strstr(msg, "exists"));
    Job out;
    assert_int_equal(meta_get(m, "j1", &out, msg, sizeof msg), 0);
    assert_string_equal(out.file_name, "a.wav"); /* not overwritten */
    meta_job_free(&out);

    /* The normal path, each step conditional on the one before. */
    assert_int_equal(
        meta_transition(m, "j1", JOB_MASK(JOB_QUEUED), JOB_DOWNLOADING, NULL, msg, sizeof msg), 0);
    assert_int_equal(meta_transition(m, "j1", JOB_MASK(JOB_DOWNLOADING), JOB_TRANSCRIBING, NULL,
                                     msg, sizeof msg),
                     0);
    assert_int_equal(meta_transition(m, "j1", JOB_MASK(JOB_TRANSCRIBING), JOB_GENERATING_NOTE, NULL,
                                     msg, sizeof msg),
                     0);
    assert_int_equal(meta_transition(m, "j1", JOB_MASK(JOB_GENERATING_NOTE), JOB_COMPLETED, NULL,
                                     msg, sizeof msg),
                     0);
    /* A stale worker that still thinks the job is downloading. */
    assert_int_equal(meta_transition(m, "j1", JOB_MASK(JOB_QUEUED) | JOB_MASK(JOB_DOWNLOADING),
                                     JOB_TRANSCRIBING, NULL, msg, sizeof msg),
                     META_STALE);
    assert_int_equal(meta_transition(m, "j1", JOB_MASK(JOB_TRANSCRIBING), JOB_ERROR, "late failure",
                                     msg, sizeof msg),
                     META_STALE);
    assert_int_equal(meta_get(m, "j1", &out, msg, sizeof msg), 0);
    assert_int_equal(out.state, JOB_COMPLETED);
    assert_null(out.error);
    meta_job_free(&out);
    /* A retry of a failed job clears its error. */
    assert_int_equal(
        meta_transition(m, "j1", JOB_MASK(JOB_COMPLETED), JOB_ERROR, "x", msg, sizeof msg), 0);
    assert_int_equal(
        meta_transition(m, "j1", JOB_MASK(JOB_ERROR), JOB_QUEUED, NULL, msg, sizeof msg), 0);
    assert_int_equal(meta_get(m, "j1", &out, msg, sizeof msg), 0);
    assert_int_equal(out.state, JOB_QUEUED);
    assert_null(out.error);
    meta_job_free(&out);
    meta_close(m);
}

static void test_idempotent_and_delete(void **state) {
    (void)state;
    Meta *m = open_meta("idem.db");
    create_job(m, "k1");
    create_job(m, "k2");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(meta_set_transcript(m, "k1", "hello", "en", 3.5, "[]", msg, sizeof msg),
                         0);
        assert_int_equal(
            meta_put_note(m, "k1", i ? "# second" : "# first", "{}", 0, msg, sizeof msg), 0);
    }
    assert_int_equal(meta_put_note(m, "k2", "# other", NULL, 0, msg, sizeof msg), 0);
    assert_int_equal(count_rows("idem.db", "SELECT COUNT(*) FROM notes WHERE job_id = 'k1'"), 1);
    Job out;
    assert_int_equal(meta_get(m, "k1", &out, msg, sizeof msg), 0);
    assert_string_equal(out.transcription, "hello");
    assert_string_equal(out.note_markdown, "# second");
    assert_true(out.note_created_at > 0);
    meta_job_free(&out);

    assert_int_equal(meta_delete(m, "k1", msg, sizeof msg), 0);
    assert_int_equal(meta_get(m, "k1", &out, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(count_rows("idem.db", "SELECT COUNT(*) FROM notes WHERE job_id = 'k1'"), 0);
    assert_int_equal(count_rows("idem.db", "SELECT COUNT(*) FROM notes"), 1); /* k2's stays */
    assert_int_equal(meta_delete(m, "k1", msg, sizeof msg), 0);
    meta_close(m);
}

static void test_counts(void **state) {
    (void)state;
    Meta *m = open_meta("counts.db");
    char id[32];
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof id, "c%d", i);
        create_job(m, id);
        /* i % 4 steps along the life cycle: three jobs in each of queued,
         * downloading, transcribing and generating_note. */
        for (int s = 0; s < i % 4; s++)
            assert_int_equal(
                meta_transition(m, id, JOB_MASK(s), (JobState)(s + 1), NULL, msg, sizeof msg), 0);
    }
    assert_int_equal(meta_transition(m, "c0", JOB_MASK_ANY, JOB_ERROR, "e", msg, sizeof msg), 0);
    assert_int_equal(meta_transition(m, "c7", JOB_MASK_ANY, JOB_COMPLETED, NULL, msg, sizeof msg),
                     0);
    int64_t counts[JOB_STATE_COUNT];
    assert_int_equal(meta_count_by_state(m, counts, msg, sizeof msg), 0);
    assert_int_equal(counts[JOB_QUEUED], 2);
    assert_int_equal(counts[JOB_DOWNLOADING], 3);
    assert_int_equal(counts[JOB_TRANSCRIBING], 3);
    assert_int_equal(counts[JOB_GENERATING_NOTE], 2);
    assert_int_equal(counts[JOB_COMPLETED], 1);
    assert_int_equal(counts[JOB_ERROR], 1);
    meta_close(m);
}

/* Runs fn(arg) in a child process and returns its exit status. The child
 * opens its own handle: a SQLite connection must not cross a fork. */
static pid_t spawn(int (*fn)(int), int arg) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    return pid;
}

static int wait_status(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static int child_sees(int unused) {
    (void)unused;
    char url[4096];
    snprintf(url, sizeof url, "sqlite://%s", db_path("procs.db"));
    Meta *m;
    if (meta_open(url, &m, NULL, 0) < 0) return 10;
    Job j;
    int rc = 0;
    if (meta_get(m, "p1", &j, NULL, 0) < 0)
        rc = 11;
    else if (j.state != JOB_QUEUED || strcmp(j.file_name, "a.wav") != 0)
        rc = 12;
    meta_job_free(&j);
    if (rc == 0 &&
        meta_transition(m, "p1", JOB_MASK(JOB_QUEUED), JOB_DOWNLOADING, NULL, NULL, 0) != 0)
        rc = 13;
    meta_close(m);
    return rc;
}

static void test_other_process_sees_writes(void **state) {
    (void)state;
    Meta *m = open_meta("procs.db");
    create_job(m, "p1");
    assert_int_equal(wait_status(spawn(child_sees, 0)), 0);
    Job j;
    assert_int_equal(meta_get(m, "p1", &j, msg, sizeof msg), 0);
    assert_int_equal(j.state, JOB_DOWNLOADING);
    assert_int_equal(j.attempts, 1);
    meta_job_free(&j);
    meta_close(m);
}

enum { N_UPDATES = 200, N_RACE = 50 };

/* 200 creates and 400 transitions, one of them on a row the other process
 * updates too; every attempt counter increment must survive. */
static int child_hammer(int k) {
    char url[4096];
    snprintf(url, sizeof url, "sqlite://%s", db_path("hammer.db"));
    Meta *m;
    if (meta_open(url, &m, NULL, 0) < 0) return 10;
    char id[32], path[64];
    int rc = 0;
    for (int i = 0; i < N_UPDATES && rc == 0; i++) {
        snprintf(id, sizeof id, "h%d-%d", k, i);
        snprintf(path, sizeof path, "uploads/%s/a.wav", id);
        Job j = {.job_id = id, .file_name = "a.wav", .file_path = path, .state = JOB_QUEUED};
        if (meta_create(m, &j, NULL, 0) != 0)
            rc = 11;
        else if (meta_transition(m, id, JOB_MASK(JOB_QUEUED), JOB_DOWNLOADING, NULL, NULL, 0) != 0)
            rc = 12;
        else if (meta_transition(m, "shared", JOB_MASK_ANY, JOB_DOWNLOADING, NULL, NULL, 0) != 0)
            rc = 13;
    }
    meta_close(m);
    return rc;
}

/* Both processes try to claim the same jobs; the exit status is how many
 * claims this one won. */
static int child_race(int k) {
    (void)k;
    char url[4096];
    snprintf(url, sizeof url, "sqlite://%s", db_path("hammer.db"));
    Meta *m;
    if (meta_open(url, &m, NULL, 0) < 0) return 255;
    int won = 0;
    char id[32];
    for (int i = 0; i < N_RACE; i++) {
        snprintf(id, sizeof id, "r%d", i);
        int rc = meta_transition(m, id, JOB_MASK(JOB_QUEUED), JOB_TRANSCRIBING, NULL, NULL, 0);
        if (rc == 0)
            won++;
        else if (rc != META_STALE) {
            won = 254;
            break;
        }
    }
    meta_close(m);
    return won;
}

static void test_concurrent_processes(void **state) {
    (void)state;
    Meta *m = open_meta("hammer.db");
    create_job(m, "shared");
    char id[32];
    for (int i = 0; i < N_RACE; i++) {
        snprintf(id, sizeof id, "r%d", i);
        create_job(m, id);
    }
    pid_t a = spawn(child_hammer, 0), b = spawn(child_hammer, 1);
    assert_int_equal(wait_status(a), 0);
    assert_int_equal(wait_status(b), 0);
    Job j;
    assert_int_equal(meta_get(m, "shared", &j, msg, sizeof msg), 0);
    assert_int_equal(j.attempts, 2 * N_UPDATES);
    meta_job_free(&j);
    int64_t counts[JOB_STATE_COUNT];
    assert_int_equal(meta_count_by_state(m, counts, msg, sizeof msg), 0);
    assert_int_equal(counts[JOB_DOWNLOADING], 2 * N_UPDATES + 1);

    a = spawn(child_race, 0);
    b = spawn(child_race, 1);
    int wa = wait_status(a), wb = wait_status(b);
    assert_true(wa >= 0 && wa <= N_RACE && wb >= 0 && wb <= N_RACE);
    assert_int_equal(wa + wb, N_RACE); /* each job claimed exactly once */
    assert_int_equal(meta_count_by_state(m, counts, msg, sizeof msg), 0);
    assert_int_equal(counts[JOB_TRANSCRIBING], N_RACE);
    assert_int_equal(counts[JOB_QUEUED], 0);
    meta_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_states_and_names),
        cmocka_unit_test(test_duplicate_and_conditional),
        cmocka_unit_test(test_idempotent_and_delete),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_other_process_sees_writes),
        cmocka_unit_test(test_concurrent_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
