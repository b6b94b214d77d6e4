/* queue/sqlite.c: the queue as a table in one SQLite file, for a single
 * machine. Several named queues may share the table (column `queue`), and
 * the file may be the one meta uses.
 *
 * A message is a row. It is visible when it is not dead and its
 * visible_at has passed; receiving it moves visible_at to the end of the
 * lease and gives it a fresh random receipt, in one BEGIN IMMEDIATE
 * transaction, so two processes can never lease the same message at once.
 * All times are wall-clock Unix seconds, the clock every process shares.
 * WAL mode and a busy timeout let the API and many worker processes use
 * the file together. The schema version is kept in table queue_schema
 * (PRAGMA user_version belongs to meta when both share a file).
 *
 * One connection per handle, its statements guarded by a mutex, so a
 * handle may be shared by threads (calls are serialised). */
#include "queue/queue.h"

#include "core/core.h"
#include "sqldb/sqldb.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 1

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS queue_schema (version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS queue_messages ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " queue TEXT NOT NULL,"
    " id TEXT NOT NULL UNIQUE,"
    " body BLOB NOT NULL,"
    " sent_at REAL NOT NULL,"
    " visible_at REAL NOT NULL,"
    " receive_count INTEGER NOT NULL DEFAULT 0,"
    " receipt TEXT,"
    " last_error TEXT,"
    " dead_at REAL);" /* NULL while the message is live */
    "CREATE INDEX IF NOT EXISTS queue_ready ON queue_messages(queue, dead_at, visible_at);"
    "CREATE UNIQUE INDEX IF NOT EXISTS queue_receipts ON queue_messages(receipt);";

enum { S_SEND, S_ANY, S_NEXT, S_KILL, S_LEASE, S_DELETE, S_VISIBILITY, S_DEAD, S_DEPTH, S_N };

static const char *const stmt_sql[S_N] = {
    [S_SEND] = "INSERT INTO queue_messages(queue, id, body, sent_at, visible_at)"
               " VALUES(?1, ?2, ?3, ?4, ?4)",
    /* A cheap read first, so idle pollers never take the write lock. */
    [S_ANY] = "SELECT 1 FROM queue_messages WHERE queue = ?1 AND dead_at IS NULL"
              " AND visible_at <= ?2 LIMIT 1",
    [S_NEXT] = "SELECT seq, id, body, receive_count, last_error FROM queue_messages"
               " WHERE queue = ?1 AND dead_at IS NULL AND visible_at <= ?2"
               " ORDER BY visible_at, seq LIMIT 1",
    [S_KILL] = "UPDATE queue_messages SET dead_at = ?2, receipt = NULL WHERE seq = ?1",
    [S_LEASE] = "UPDATE queue_messages SET receive_count = receive_count + 1, receipt = ?2,"
                " visible_at = ?3 WHERE seq = ?1",
    [S_DELETE] = "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2"
                 " AND dead_at IS NULL",
    [S_VISIBILITY] = "UPDATE queue_messages SET visible_at = ?3,"
                     " last_error = coalesce(?4, last_error)"
                     " WHERE queue = ?1 AND receipt = ?2 AND dead_at IS NULL",
    [S_DEAD] = "UPDATE queue_messages SET dead_at = ?3, receipt = NULL,"
               " last_error = coalesce(?4, last_error)"
               " WHERE queue = ?1 AND receipt = ?2 AND dead_at IS NULL",
    [S_DEPTH] = "SELECT coalesce(sum(dead_at IS NULL AND visible_at <= ?2), 0),"
                " coalesce(sum(dead_at IS NULL AND visible_at > ?2), 0),"
                " coalesce(sum(dead_at IS NOT NULL), 0) FROM queue_messages WHERE queue = ?1",
};

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_N];
    pthread_mutex_t lock;
    char name[81];
    int max_receives;
} QueueSqlite;

static double wall_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int sq_accepts(const char *url) {
    return sqldb_accepts(url);
}

static int db_fail(sqlite3 *db, char *msg, size_t cap, const char *what) {
    return sqldb_fail(db, "queue", what, msg, cap);
}

static int exec(sqlite3 *db, const char *sql, char *msg, size_t cap) {
    return sqldb_exec(db, "queue", sql, msg, cap);
}

/* Reads "queue=NAME" and "max_receives=N" from the URL's query string.
 * Names follow SQS's rule: 1..80 of [A-Za-z0-9_-]. */
static int parse_query(const char *query, QueueSqlite *s, char *msg, size_t cap) {
    s->max_receives = QUEUE_DEFAULT_MAX_RECEIVES;
    while (query && *query) {
        size_t n = strcspn(query, "&");
        if (n > 5 && strncmp(query, "queue=", 6) == 0) {
            size_t len = n - 6;
            if (len == 0 || len > 80) return di_fail(msg, cap, DI_EINVAL, "queue: bad queue name");
            for (size_t i = 0; i < len; i++) {
                char c = query[6 + i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_'))
                    return di_fail(msg, cap, DI_EINVAL, "queue: bad queue name");
            }
            memcpy(s->name, query + 6, len);
            s->name[len] = 0;
        } else if (n > 13 && strncmp(query, "max_receives=", 13) == 0) {
            char *end;
            long v = strtol(query + 13, &end, 10);
            if (end != query + n || v < 1 || v > 1000)
                return di_fail(msg, cap, DI_EINVAL, "queue: max_receives must be 1..1000");
            s->max_receives = (int)v;
        } else {
            return di_fail(msg, cap, DI_EINVAL, "queue: unknown URL parameter '%.*s'", (int)n,
                           query);
        }
        query += n;
        if (*query == '&') query++;
    }
    if (!s->name[0]) return di_fail(msg, cap, DI_EINVAL, "queue: URL needs ?queue=NAME");
    return 0;
}

static int ensure_schema(sqlite3 *db, char *msg, size_t cap) {
    int rc = exec(db, "BEGIN IMMEDIATE", msg, cap);
    if (rc < 0) return rc;
    rc = exec(db, schema_sql, msg, cap);
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (rc == 0 &&
        sqlite3_prepare_v2(db, "SELECT max(version) FROM queue_schema", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc == 0 && version < 0)
        rc = db_fail(db, msg, cap, "reading the schema version");
    else if (rc == 0 && version > SCHEMA_VERSION)
        rc = di_fail(msg, cap, DI_EUNSUPPORTED, "queue: schema version %d is newer than %d",
                     version, SCHEMA_VERSION);
    else if (rc == 0 && version == 0)
        rc = exec(db, "INSERT INTO queue_schema(version) VALUES(1)", msg, cap);
    if (rc == 0) return exec(db, "COMMIT", msg, cap);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void sq_close(void *state) {
    QueueSqlite *s = state;
    if (!s) return;
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int sq_open(const char *url, void **state, char *msg, size_t cap) {
    QueueSqlite *s = calloc(1, sizeof *s);
    if (!s) return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    /* The query first, so a bad queue name creates no database file. */
    const char *q = strchr(url, '?');
    int rc = parse_query(q ? q + 1 : NULL, s, msg, cap);
    if (rc == 0) rc = sqldb_open(url, "queue", &s->db, NULL, msg, cap);
    if (rc == 0) rc = ensure_schema(s->db, msg, cap);
    if (rc == 0) rc = sqldb_prepare(s->db, "queue", stmt_sql, S_N, s->stmt, msg, cap);
    if (rc < 0) {
        sq_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

/* A prepared statement, reset and unbound, with the queue name bound as
 * ?1 when it takes one. The caller holds the handle's lock. */
static sqlite3_stmt *stmt(QueueSqlite *s, int which) {
    sqlite3_stmt *st = s->stmt[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (which != S_KILL && which != S_LEASE) sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
    return st;
}

/* Runs a statement that returns no rows: changed rows, or -1. */
static int run(QueueSqlite *s, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    int changed = sqlite3_changes(s->db);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? changed : -1;
}

/* 32 random hex digits as a uuid, like SQS's message ids. */
static int make_id(char out[37]) {
    char hex[33];
    if (queue_random_hex(hex, sizeof hex) < 0) return -1;
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return 0;
}

static int sq_send(void *state, const void *body, size_t len, char *id_out, size_t id_cap,
                   char *msg, size_t cap) {
    QueueSqlite *s = state;
    char id[37];
    if (make_id(id) < 0) return di_fail(msg, cap, DI_EIO, "queue: no randomness");
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_SEND);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, wall_now());
    int rc = run(s, st) == 1 ? 0 : db_fail(s->db, msg, cap, "send");
    pthread_mutex_unlock(&s->lock);
    if (rc == 0 && id_out) snprintf(id_out, id_cap, "%s", id);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

/* Copies the current row of S_NEXT into m (without a receipt). */
static int read_row(sqlite3_stmt *st, QueueMessage *m) {
    int len = sqlite3_column_bytes(st, 2);
    const void *blob = sqlite3_column_blob(st, 2);
    m->id = col_dup(st, 1);
    m->body = malloc((size_t)len + 1);
    m->receive_count = sqlite3_column_int(st, 3);
    m->last_error = col_dup(st, 4);
    if (!m->id || !m->body) return -1;
    if (len > 0) memcpy(m->body, blob, (size_t)len);
    m->body[len] = 0;
    m->body_len = (size_t)len;
    return 0;
}

/* Messages dead-lettered by one receive, reported after its commit. */
typedef struct {
    QueueMessage *items;
    int n, cap;
} DeadList;

static void dead_list_free(DeadList *d) {
    for (int i = 0; i < d->n; i++)
        queue_message_free(&d->items[i]);
    free(d->items);
}

/* Inside the transaction: leases the first visible message into *out, or
 * moves over-received ones to `dead` on the way. 1, 0 (none) or error. */
static int lease_next(QueueSqlite *s, double now, double visibility_s, DeadList *dead,
                      QueueMessage *out, char *msg, size_t cap) {
    for (;;) {
        sqlite3_stmt *st = stmt(s, S_NEXT);
        sqlite3_bind_double(st, 2, now);
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) return 0;
        if (step != SQLITE_ROW) return db_fail(s->db, msg, cap, "receive");
        sqlite3_int64 seq = sqlite3_column_int64(st, 0);
        QueueMessage m = {0};
        int ok = read_row(st, &m) == 0;
        sqlite3_reset(st);
        if (!ok) {
            queue_message_free(&m);
            return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
        }
        int kill = m.receive_count >= s->max_receives;
        if (kill && dead->n == dead->cap) {
            int ncap = dead->cap ? 2 * dead->cap : 4;
            QueueMessage *grown = realloc(dead->items, (size_t)ncap * sizeof *grown);
            if (!grown) {
                queue_message_free(&m);
                return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
            }
            dead->items = grown;
            dead->cap = ncap;
        }
        st = stmt(s, kill ? S_KILL : S_LEASE);
        sqlite3_bind_int64(st, 1, seq);
        char receipt[33] = "";
        if (kill) {
            sqlite3_bind_double(st, 2, now);
        } else {
            if (queue_random_hex(receipt, sizeof receipt) < 0) {
                queue_message_free(&m);
                return di_fail(msg, cap, DI_EIO, "queue: no randomness");
            }
            sqlite3_bind_text(st, 2, receipt, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 3, now + visibility_s);
        }
        if (run(s, st) != 1) {
            queue_message_free(&m);
            return db_fail(s->db, msg, cap, "receive");
        }
        if (kill) {
            dead->items[dead->n++] = m;
            continue;
        }
        m.receive_count++;
        m.receipt = strdup(receipt);
        *out = m;
        if (!m.receipt) return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
        return 1;
    }
}

static int sq_receive(void *state, double wait_s, double visibility_s, QueueDeadFn on_dead,
                      void *ctx, QueueMessage *out, char *msg, size_t cap) {
    (void)wait_s; /* queue.c polls around this single attempt */
    QueueSqlite *s = state;
    DeadList dead = {0};
    pthread_mutex_lock(&s->lock);
    double now = wall_now();
    sqlite3_stmt *st = stmt(s, S_ANY);
    sqlite3_bind_double(st, 2, now);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    int rc = step == SQLITE_DONE ? 0 : step == SQLITE_ROW ? 1 : db_fail(s->db, msg, cap, "receive");
    if (rc == 1) {
        /* IMMEDIATE takes the write lock before reading, so the message
         * chosen cannot be leased by another process in between. */
        rc = exec(s->db, "BEGIN IMMEDIATE", msg, cap);
        if (rc == 0) {
            rc = lease_next(s, wall_now(), visibility_s, &dead, out, msg, cap);
            int c = rc >= 0 ? exec(s->db, "COMMIT", msg, cap) : -1;
            if (c < 0) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                queue_message_free(out);
                /* Nothing was committed, so nothing died. */
                dead_list_free(&dead);
                dead = (DeadList){0};
                if (rc >= 0) rc = c;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < dead.n; i++)
        if (on_dead) on_dead(ctx, &dead.items[i]);
    dead_list_free(&dead);
    return rc;
}

/* The three receipt operations differ only in their statement. */
static int by_receipt(QueueSqlite *s, int which, const char *receipt, double when,
                      const char *reason, const char *what, char *msg, size_t cap) {
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, which);
    sqlite3_bind_text(st, 2, receipt, -1, SQLITE_STATIC);
    if (which != S_DELETE) {
        sqlite3_bind_double(st, 3, when);
        if (reason) sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    }
    int changed = run(s, st);
    int rc = changed < 0 ? db_fail(s->db, msg, cap, what) : changed == 0 ? QUEUE_STALE : 0;
    pthread_mutex_unlock(&s->lock);
    if (rc == QUEUE_STALE) di_fail(msg, cap, DI_OK, "queue: %s: receipt is stale", what);
    return rc;
}

static int sq_remove(void *state, const char *receipt, char *msg, size_t cap) {
    return by_receipt(state, S_DELETE, receipt, 0, NULL, "delete", msg, cap);
}

static int sq_change_visibility(void *state, const char *receipt, double seconds,
                                const char *reason, char *msg, size_t cap) {
    return by_receipt(state, S_VISIBILITY, receipt, wall_now() + seconds, reason,
                      "change visibility", msg, cap);
}

static int sq_dead_letter(void *state, const char *receipt, const char *reason, char *msg,
                          size_t cap) {
    return by_receipt(state, S_DEAD, receipt, wall_now(), reason, "dead letter", msg, cap);
}

static int sq_depth(void *state, QueueDepth *out, char *msg, size_t cap) {
    QueueSqlite *s = state;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, S_DEPTH);
    sqlite3_bind_double(st, 2, wall_now());
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->visible = sqlite3_column_int64(st, 0);
        out->in_flight = sqlite3_column_int64(st, 1);
        out->dead = sqlite3_column_int64(st, 2);
    } else {
        rc = db_fail(s->db, msg, cap, "depth");
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

const QueueBackend queue_sqlite_backend = {
    .name = "sqlite",
    .accepts = sq_accepts,
    .open = sq_open,
    .close = sq_close,
    .send = sq_send,
    .receive = sq_receive,
    .native_wait = 0,
    .remove = sq_remove,
    .change_visibility = sq_change_visibility,
    .dead_letter = sq_dead_letter,
    .depth = sq_depth,
};
