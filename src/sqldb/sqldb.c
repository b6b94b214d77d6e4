/* sqldb: the shared way to open diarist's SQLite file. */
#include "sqldb/sqldb.h"

#include "core/core.h"

#include <string.h>

#define SCHEME "sqlite://"

int sqldb_accepts(const char *url) {
    return url && strncmp(url, SCHEME, strlen(SCHEME)) == 0;
}

int sqldb_fail(sqlite3 *db, const char *who, const char *what, char *msg, size_t cap) {
    int err = sqlite3_errcode(db) == SQLITE_NOMEM ? DI_ENOMEM : DI_EIO;
    return di_fail(msg, cap, err, "%s: %s: %s", who, what, sqlite3_errmsg(db));
}

int sqldb_exec(sqlite3 *db, const char *who, const char *sql, char *msg, size_t cap) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sqldb_fail(db, who, sql, msg, cap);
    return 0;
}

int sqldb_open(const char *url, const char *who, sqlite3 **db, const char **query, char *msg,
               size_t cap) {
    *db = NULL;
    if (query) *query = NULL;
    if (!sqldb_accepts(url)) return di_fail(msg, cap, DI_EINVAL, "%s: not a sqlite:// URL", who);
    const char *p = url + strlen(SCHEME);
    size_t n = strcspn(p, "?");
    if (n == 0 || n >= 4096)
        return di_fail(msg, cap, DI_EINVAL, "%s: bad sqlite URL '%.200s'", who, url);
    char path[4096];
    memcpy(path, p, n);
    path[n] = 0;
    if (query && p[n] == '?') *query = p + n + 1;
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        int rc = di_fail(msg, cap, DI_EIO, "%s: cannot open '%.200s': %s", who, path,
                         *db ? sqlite3_errmsg(*db) : "out of memory");
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, SQLDB_BUSY_MS);
    int rc = sqldb_exec(*db, who, "PRAGMA journal_mode = WAL", msg, cap);
    if (rc == 0) rc = sqldb_exec(*db, who, "PRAGMA synchronous = NORMAL", msg, cap);
    if (rc) {
        sqlite3_close(*db);
        *db = NULL;
    }
    return rc;
}

int sqldb_prepare(sqlite3 *db, const char *who, const char *const *sql, int n, sqlite3_stmt **out,
                  char *msg, size_t cap) {
    for (int i = 0; i < n; i++)
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &out[i], NULL) !=
            SQLITE_OK)
            return sqldb_fail(db, who, "preparing a statement", msg, cap);
    return 0;
}
