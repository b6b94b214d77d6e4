/*
 * sqldb: opening the embedded SQLite file that the meta and queue backends
 * share (sqlite:///path/diarist.db[?query]).
 *
 * Every handle is opened the same way, so several processes can share the
 * file: a busy timeout first (switching to WAL needs a lock another process
 * may hold for a moment), then WAL, whose NORMAL sync keeps every commit
 * across a process crash (a power cut may lose the last one). Each backend
 * keeps its own schema and statements; errors are prefixed with the
 * caller's name ("meta", "queue"). The caller owns the handle and closes
 * it with sqlite3_close.
 */
#ifndef DIARIST_SQLDB_H
#define DIARIST_SQLDB_H

#include <sqlite3.h>
#include <stddef.h>

#define SQLDB_BUSY_MS 5000

/* Whether url names an embedded database ("sqlite://..."). */
int sqldb_accepts(const char *url);
/* Opens the file a sqlite:// URL names. *query, if not NULL, points at
 * what follows '?' in url, or is NULL when there is none. */
int sqldb_open(const char *url, const char *who, sqlite3 **db, const char **query, char *msg,
               size_t cap);
/* DI_ENOMEM or DI_EIO with "who: what: sqlite's message". */
int sqldb_fail(sqlite3 *db, const char *who, const char *what, char *msg, size_t cap);
/* Runs SQL that returns no rows. */
int sqldb_exec(sqlite3 *db, const char *who, const char *sql, char *msg, size_t cap);
/* Prepares n persistent statements. */
int sqldb_prepare(sqlite3 *db, const char *who, const char *const *sql, int n, sqlite3_stmt **out,
                  char *msg, size_t cap);

#endif
