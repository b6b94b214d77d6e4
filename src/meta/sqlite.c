/* meta/sqlite.c: job records in one SQLite file, for a single machine.
 *
 * Table `jobs` holds the record under the contract's attribute names;
 * table `notes` holds the note (job_id, diary_note, created_at) like the
 * seed's DiaryNotes. The file is in WAL mode with a busy timeout, so the
 * API and several worker processes can share it: readers never block,
 * writers queue for up to SQLDB_BUSY_MS. Writes that touch both tables run in
 * one BEGIN IMMEDIATE transaction. The schema version is PRAGMA
 * user_version; the queue backend may live in the same file and keeps its
 * version elsewhere.
 *
 * One connection per handle, its prepared statements guarded by a mutex,
 * so a handle may be shared by threads (calls are serialised). */
#include "meta/meta.h"

#include "core/core.h"
#include "sqldb/sqldb.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " job_id TEXT PRIMARY KEY,"
    " file_name TEXT NOT NULL,"
    " file_path TEXT NOT NULL,"
    " job_status TEXT NOT NULL,"
    " transcription TEXT, error TEXT, language TEXT,"
    " duration REAL NOT NULL DEFAULT 0,"
    " segments_json TEXT, note_json TEXT, note_error TEXT,"
    " created_at REAL NOT NULL, updated_at REAL NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " callback_url TEXT);"
    "CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(job_status);"
    "CREATE TABLE IF NOT EXISTS notes ("
    " job_id TEXT PRIMARY KEY,"
    " diary_note TEXT NOT NULL,"
    " created_at REAL NOT NULL);";

enum {
    S_CREATE,
    S_GET,
    S_TRANSITION,
    S_EXISTS,
    S_TRANSCRIPT,
    S_NOTE_JOB,
    S_NOTE_UPSERT,
    S_NOTE_ERROR,
    S_DEL_NOTE,
    S_DEL_JOB,
    S_COUNT,
    S_N
};

static const char *const stmt_sql[S_N] = {
    [S_CREATE] = "INSERT INTO jobs(job_id, file_name, file_path, job_status, created_at,"
                 " updated_at, callback_url) VALUES(?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    [S_GET] = "SELECT j.job_id, j.file_name, j.file_path, j.job_status, j.transcription,"
              " j.error, j.language, j.duration, j.segments_json, j.note_json, n.diary_note,"
              " n.created_at, j.note_error, j.created_at, j.updated_at, j.attempts,"
              " j.callback_url FROM jobs j LEFT JOIN notes n ON n.job_id = j.job_id"
              " WHERE j.job_id = ?1",
    /* The condition is a list like ",queued,downloading," so one statement
     * serves every mask. */
    [S_TRANSITION] = "UPDATE jobs SET job_status = ?2, error = ?3, updated_at = ?4,"
                     " attempts = attempts + ?5 WHERE job_id = ?1"
                     " AND instr(?6, ',' || job_status || ',') > 0",
    [S_EXISTS] = "SELECT 1 FROM jobs WHERE job_id = ?1",
    [S_TRANSCRIPT] = "UPDATE jobs SET transcription = ?2, language = ?3, duration = ?4,"
                     " segments_json = ?5, updated_at = ?6 WHERE job_id = ?1",
    [S_NOTE_JOB] = "UPDATE jobs SET note_json = ?2, note_error = NULL, updated_at = ?3"
                   " WHERE job_id = ?1",
    [S_NOTE_UPSERT] = "INSERT INTO notes(job_id, diary_note, created_at) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(job_id) DO UPDATE SET diary_note = excluded.diary_note,"
                      " created_at = excluded.created_at",
    [S_NOTE_ERROR] = "UPDATE jobs SET note_error = ?2, updated_at = ?3 WHERE job_id = ?1",
    [S_DEL_NOTE] = "DELETE FROM notes WHERE job_id = ?1",
    [S_DEL_JOB] = "DELETE FROM jobs WHERE job_id = ?1",
    [S_COUNT] = "SELECT job_status, COUNT(*) FROM jobs GROUP BY job_status",
};

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_N];
    pthread_mutex_t lock;
} MetaSqlite;

/* "sqlite://" followed by a path; a query string (the queue's "?queue=")
 * is ignored, so meta and queue can be given the same file. */
static int sq_accepts(const char *url) {
    return sqldb_accepts(url);
}

static int db_fail(sqlite3 *db, char *msg, size_t cap, const char *what) {
    return sqldb_fail(db, "meta", what, msg, cap);
}

static int exec(sqlite3 *db, const char *sql, char *msg, size_t cap) {
    return sqldb_exec(db, "meta", sql, msg, cap);
}

/* Creates the tables on first use and refuses a file written by a newer
 * diarist. BEGIN IMMEDIATE so two processes opening a fresh file at once
 * do not both try to create the schema. */
static int ensure_schema(sqlite3 *db, char *msg, size_t cap) {
    int rc = exec(db, "BEGIN IMMEDIATE", msg, cap);
    if (rc < 0) return rc;
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0)
        rc = db_fail(db, msg, cap, "reading the schema version");
    else if (version > SCHEMA_VERSION)
        rc = di_fail(msg, cap, DI_EUNSUPPORTED, "meta: schema version %d is newer than %d", version,
                     SCHEMA_VERSION);
    else if (version < SCHEMA_VERSION) {
        rc = exec(db, schema_sql, msg, cap);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        if (rc == 0) rc = exec(db, sql, msg, cap);
    }
    if (rc == 0) return exec(db, "COMMIT", msg, cap);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void sq_close(void *state) {
    MetaSqlite *s = state;
    if (!s) return;
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int sq_open(const char *url, void **state, char *msg, size_t cap) {
    MetaSqlite *s = calloc(1, sizeof *s);
    if (!s) return di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    int rc = sqldb_open(url, "meta", &s->db, NULL, msg, cap);
    if (rc == 0) rc = ensure_schema(s->db, msg, cap);
    if (rc == 0) rc = sqldb_prepare(s->db, "meta", stmt_sql, S_N, s->stmt, msg, cap);
    if (rc < 0) {
        sq_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

/* A prepared statement, reset and unbound for new bindings. The caller
 * holds the handle's lock. */
static sqlite3_stmt *stmt(MetaSqlite *s, int which) {
    sqlite3_stmt *st = s->stmt[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows; -1 on failure, else the number
 * of rows it changed. */
static int run(MetaSqlite *s, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    int changed = sqlite3_changes(s->db);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? changed : -1;
}

static int sq_create(void *state, const Job *job, char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_CREATE);
    bind_text(st, 1, job->job_id);
    bind_text(st, 2, job->file_name);
    bind_text(st, 3, job->file_path);
    bind_text(st, 4, job_state_name(job->state));
    sqlite3_bind_double(st, 5, job->created_at);
    bind_text(st, 6, job->callback_url);
    int rc = 0;
    if (run(s, st) < 0) {
        if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = di_fail(msg, cap, DI_EINVAL, "meta: job %.128s already exists", job->job_id);
        else
            rc = db_fail(s->db, msg, cap, "create");
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static int sq_get(void *state, const char *job_id, Job *job, char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_GET);
    bind_text(st, 1, job_id);
    int step = sqlite3_step(st);
    int rc = 0;
    if (step == SQLITE_ROW) {
        job->job_id = col_dup(st, 0);
        job->file_name = col_dup(st, 1);
        job->file_path = col_dup(st, 2);
        const char *status = (const char *)sqlite3_column_text(st, 3);
        if (job_state_parse(status, &job->state) < 0) job->state = JOB_ERROR;
        job->transcription = col_dup(st, 4);
        job->error = col_dup(st, 5);
        job->language = col_dup(st, 6);
        job->duration = sqlite3_column_double(st, 7);
        job->segments_json = col_dup(st, 8);
        job->note_json = col_dup(st, 9);
        job->note_markdown = col_dup(st, 10);
        job->note_created_at = sqlite3_column_double(st, 11);
        job->note_error = col_dup(st, 12);
        job->created_at = sqlite3_column_double(st, 13);
        job->updated_at = sqlite3_column_double(st, 14);
        job->attempts = sqlite3_column_int(st, 15);
        job->callback_url = col_dup(st, 16);
        if (!job->job_id || !job->file_name || !job->file_path) {
            meta_job_free(job);
            rc = di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
        }
    } else if (step == SQLITE_DONE) {
        rc = di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    } else {
        rc = db_fail(s->db, msg, cap, "get");
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* After an update changed nothing: was the job there at all? */
static int missing_or(MetaSqlite *s, const char *job_id, int if_present, char *msg, size_t cap) {
    sqlite3_stmt *st = stmt(s, S_EXISTS);
    bind_text(st, 1, job_id);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step == SQLITE_ROW) return if_present;
    if (step == SQLITE_DONE) return di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    return db_fail(s->db, msg, cap, "lookup");
}

static int sq_transition(void *state, const char *job_id, unsigned from_mask, JobState to,
                         const char *error, double now, char *msg, size_t cap) {
    MetaSqlite *s = state;
    char allowed[128] = ",";
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        if (from_mask & JOB_MASK(i)) {
            strcat(allowed, job_state_name((JobState)i));
            strcat(allowed, ",");
        }
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_TRANSITION);
    bind_text(st, 1, job_id);
    bind_text(st, 2, job_state_name(to));
    bind_text(st, 3, error);
    sqlite3_bind_double(st, 4, now);
    sqlite3_bind_int(st, 5, to == JOB_DOWNLOADING);
    bind_text(st, 6, allowed);
    int changed = run(s, st);
    int rc = 0;
    if (changed < 0)
        rc = db_fail(s->db, msg, cap, "transition");
    else if (changed == 0)
        rc = missing_or(s, job_id, META_STALE, msg, cap);
    if (rc == META_STALE)
        di_fail(msg, cap, DI_OK, "meta: job %.128s is not in an expected state", job_id);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_set_transcript(void *state, const char *job_id, const char *text,
                             const char *language, double duration, const char *segments_json,
                             double now, char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_TRANSCRIPT);
    bind_text(st, 1, job_id);
    bind_text(st, 2, text);
    bind_text(st, 3, language);
    sqlite3_bind_double(st, 4, duration);
    bind_text(st, 5, segments_json);
    sqlite3_bind_double(st, 6, now);
    int changed = run(s, st);
    int rc = changed < 0    ? db_fail(s->db, msg, cap, "set transcript")
             : changed == 0 ? di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id)
                            : 0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_put_note(void *state, const char *job_id, const char *markdown, const char *json,
                       double created_at, double now, char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    int rc = exec(s->db, "BEGIN IMMEDIATE", msg, cap);
    if (rc == 0) {
        sqlite3_stmt *st = stmt(s, S_NOTE_JOB);
        bind_text(st, 1, job_id);
        bind_text(st, 2, json);
        sqlite3_bind_double(st, 3, now);
        int changed = run(s, st);
        if (changed < 0)
            rc = db_fail(s->db, msg, cap, "put note");
        else if (changed == 0)
            rc = di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    }
    if (rc == 0) {
        sqlite3_stmt *st = stmt(s, S_NOTE_UPSERT);
        bind_text(st, 1, job_id);
        bind_text(st, 2, markdown);
        sqlite3_bind_double(st, 3, created_at);
        if (run(s, st) < 0) rc = db_fail(s->db, msg, cap, "put note");
    }
    if (rc == 0) rc = exec(s->db, "COMMIT", msg, cap);
    if (rc < 0) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_set_note_error(void *state, const char *job_id, const char *error, double now,
                             char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_NOTE_ERROR);
    bind_text(st, 1, job_id);
    bind_text(st, 2, error);
    sqlite3_bind_double(st, 3, now);
    int changed = run(s, st);
    int rc = changed < 0    ? db_fail(s->db, msg, cap, "set note error")
             : changed == 0 ? di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id)
                            : 0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_remove(void *state, const char *job_id, char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    int rc = exec(s->db, "BEGIN IMMEDIATE", msg, cap);
    for (int which = S_DEL_NOTE; rc == 0 && which <= S_DEL_JOB; which++) {
        sqlite3_stmt *st = stmt(s, which);
        bind_text(st, 1, job_id);
        if (run(s, st) < 0) rc = db_fail(s->db, msg, cap, "delete");
    }
    if (rc == 0) rc = exec(s->db, "COMMIT", msg, cap);
    if (rc < 0) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_count_by_state(void *state, int64_t counts[JOB_STATE_COUNT], char *msg, size_t cap) {
    MetaSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_COUNT);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        JobState js;
        if (job_state_parse((const char *)sqlite3_column_text(st, 0), &js) == 0)
            counts[js] = sqlite3_column_int64(st, 1);
    }
    int rc = step == SQLITE_DONE ? 0 : db_fail(s->db, msg, cap, "count");
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

const MetaBackend meta_sqlite_backend = {
    .name = "sqlite",
    .accepts = sq_accepts,
    .open = sq_open,
    .close = sq_close,
    .create = sq_create,
    .get = sq_get,
    .transition = sq_transition,
    .set_transcript = sq_set_transcript,
    .put_note = sq_put_note,
    .set_note_error = sq_set_note_error,
    .remove = sq_remove,
    .count_by_state = sq_count_by_state,
};
