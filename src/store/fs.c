/* store/fs.c: the blob store as a directory tree. A key "a/b/c" is the file
 * <root>/a/b/c. Writes go to a temp file beside the final one (same
 * directory, so the rename is atomic), which is fsynced, renamed into place,
 * and then the directory is fsynced so the rename itself survives a power
 * cut. Temp files are named STORE_TEMP_PREFIX<pid>.<random>; no valid key
 * can name one, so no reader ever sees a partial blob. */
#include "store/store.h"

#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char root[PATH_MAX];
} FsStore;

typedef struct {
    StoreWriter base;
    int fd;
    char tmp[PATH_MAX];
    char path[PATH_MAX];
} FsWriter;

typedef struct {
    StoreReader base;
    int fd;
} FsReader;

/* "file:///abs/dir" or a plain path. */
static int fs_accepts(const char *url) {
    if (strncmp(url, "file://", 7) == 0) return 1;
    return strstr(url, "://") == NULL;
}

static int join(const FsStore *fs, const char *key, char *out, size_t cap) {
    return snprintf(out, cap, "%s/%s", fs->root, key) < (int)cap ? 0 : DI_EINVAL;
}

/* Creates every missing directory of path (not its last component when
 * `parent_only`). A new directory's parent is fsynced so it survives too. */
static int mkdirs(const char *path, int parent_only) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    if (parent_only) {
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) return 0;
        *slash = 0;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(buf, 0755) == 0) {
            char *up = strrchr(buf, '/');
            if (up && up != buf) {
                *up = 0;
                int dfd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0) {
                    fsync(dfd);
                    close(dfd);
                }
                *up = '/';
            }
        } else if (errno != EEXIST) {
            return -1;
        }
        *p = saved;
        if (!saved) break;
    }
    return 0;
}

static int fsync_parent(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

static int fs_open(const char *url, void **state, char *msg, size_t cap) {
    const char *path = strncmp(url, "file://", 7) == 0 ? url + 7 : url;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n == 0 || n >= PATH_MAX - STORE_KEY_MAX - 64)
        return di_fail(msg, cap, DI_EINVAL, "store: bad directory '%.200s'", path);
    FsStore *fs = calloc(1, sizeof *fs);
    if (!fs) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    memcpy(fs->root, path, n);
    fs->root[n] = 0;
    struct stat sb;
    if (mkdirs(fs->root, 0) < 0 || stat(fs->root, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        int e = errno;
        free(fs);
        return di_fail(msg, cap, DI_EIO, "store: cannot use directory '%.200s': %s", path,
                       strerror(e));
    }
    *state = fs;
    return 0;
}

static void fs_close(void *state) {
    free(state);
}

/* ---- Writing ---------------------------------------------------------- */

static int fs_write(StoreWriter *base, const void *buf, size_t n, char *msg, size_t cap) {
    FsWriter *w = (FsWriter *)base;
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return di_fail(msg, cap, DI_EIO, "store: write failed: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void fs_abort(StoreWriter *base) {
    FsWriter *w = (FsWriter *)base;
    close(w->fd);
    unlink(w->tmp);
    free(w);
}

static int fs_commit(StoreWriter *base, char *msg, size_t cap) {
    FsWriter *w = (FsWriter *)base;
    const char *what = "fsync";
    int ok = fsync(w->fd) == 0;
    if (close(w->fd) != 0 && ok) {
        ok = 0;
        what = "close";
    }
    w->fd = -1;
    if (ok && rename(w->tmp, w->path) != 0) {
        ok = 0;
        what = "rename";
    }
    if (!ok) {
        int e = errno;
        unlink(w->tmp);
        free(w);
        return di_fail(msg, cap, DI_EIO, "store: %s failed: %s", what, strerror(e));
    }
    int rc = fsync_parent(w->path);
    int e = errno;
    free(w);
    if (rc < 0) return di_fail(msg, cap, DI_EIO, "store: directory fsync failed: %s", strerror(e));
    return 0;
}

static int fs_open_write(void *state, const char *key, StoreWriter **out, char *msg, size_t cap) {
    FsStore *fs = state;
    FsWriter *w = calloc(1, sizeof *w);
    if (!w) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)w;
    if (join(fs, key, w->path, sizeof w->path) < 0) {
        free(w);
        return di_fail(msg, cap, DI_EINVAL, "store: key too long");
    }
    const char *slash = strrchr(w->path, '/');
    snprintf(w->tmp, sizeof w->tmp, "%.*s/%s%ld.%016llx", (int)(slash - w->path), w->path,
             STORE_TEMP_PREFIX, (long)getpid(), (unsigned long long)r);
    /* A concurrent delete may remove the directory between mkdirs and
     * open (it prunes empty directories), so try twice. */
    w->fd = -1;
    for (int attempt = 0; attempt < 2 && w->fd < 0; attempt++) {
        if (mkdirs(w->path, 1) < 0) break;
        w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd < 0 && errno != ENOENT) break;
    }
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return di_fail(msg, cap, DI_EIO, "store: cannot create '%.200s': %s", key, strerror(e));
    }
    w->base.write = fs_write;
    w->base.commit = fs_commit;
    w->base.abort = fs_abort;
    *out = &w->base;
    return 0;
}

/* ---- Reading ---------------------------------------------------------- */

static int fs_read(StoreReader *base, void *buf, size_t n, size_t *got, char *msg, size_t cap) {
    FsReader *r = (FsReader *)base;
    for (;;) {
        ssize_t k = read(r->fd, buf, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return di_fail(msg, cap, DI_EIO, "store: read failed: %s", strerror(errno));
        *got = (size_t)k;
        return 0;
    }
}

static void fs_reader_close(StoreReader *base) {
    FsReader *r = (FsReader *)base;
    close(r->fd);
    free(r);
}

/* Opens the file behind key, refusing symlinks and anything that is not a
 * regular file, so a directory never looks like a blob. */
static int open_blob(FsStore *fs, const char *key, int *fd_out, uint64_t *size, char *msg,
                     size_t cap) {
    char path[PATH_MAX];
    if (join(fs, key, path, sizeof path) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        if (fd >= 0) close(fd);
        if (fd >= 0 || e == ENOENT || e == ENOTDIR || e == ELOOP)
            return di_fail(msg, cap, DI_ENOTFOUND, "store: no blob '%.200s'", key);
        return di_fail(msg, cap, DI_EIO, "store: cannot open '%.200s': %s", key, strerror(e));
    }
    *fd_out = fd;
    *size = (uint64_t)sb.st_size;
    return 0;
}

static int fs_open_read(void *state, const char *key, StoreReader **out, char *msg, size_t cap) {
    FsReader *r = calloc(1, sizeof *r);
    if (!r) return di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    int rc = open_blob(state, key, &r->fd, &r->base.size, msg, cap);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->base.read = fs_read;
    r->base.close = fs_reader_close;
    *out = &r->base;
    return 0;
}

static int fs_get_file(void *state, const char *key, const char *path, char *msg, size_t cap) {
    int in;
    uint64_t size;
    int rc = open_blob(state, key, &in, &size, msg, cap);
    if (rc < 0) return rc;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.part%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        close(in);
        return di_fail(msg, cap, DI_EINVAL, "store: local path too long");
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return di_fail(msg, cap, DI_EIO, "store: cannot create '%.200s': %s", tmp, strerror(e));
    }
    enum { CHUNK = 256 * 1024 };
    char *buf = malloc(CHUNK);
    rc = buf ? 0 : di_fail(msg, cap, DI_ENOMEM, "store: out of memory");
    while (rc == 0) {
        ssize_t k = read(in, buf, CHUNK);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) rc = di_fail(msg, cap, DI_EIO, "store: read failed: %s", strerror(errno));
        if (k <= 0) break;
        for (ssize_t off = 0; off < k && rc == 0;) {
            ssize_t m = write(out, buf + off, (size_t)(k - off));
            if (m < 0 && errno == EINTR) continue;
            if (m <= 0)
                rc = di_fail(msg, cap, DI_EIO, "store: write failed: %s", strerror(errno));
            else
                off += m;
        }
    }
    free(buf);
    close(in);
    if (close(out) != 0 && rc == 0) rc = di_fail(msg, cap, DI_EIO, "store: close failed");
    if (rc == 0 && rename(tmp, path) != 0)
        rc = di_fail(msg, cap, DI_EIO, "store: rename to '%.200s' failed: %s", path,
                     strerror(errno));
    if (rc < 0) unlink(tmp);
    return rc;
}

static int fs_stat(void *state, const char *key, uint64_t *size, char *msg, size_t cap) {
    char path[PATH_MAX];
    if (join(state, key, path, sizeof path) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long");
    struct stat sb;
    int found = lstat(path, &sb) == 0;
    if (!found && errno != ENOENT && errno != ENOTDIR)
        return di_fail(msg, cap, DI_EIO, "store: stat '%.200s': %s", key, strerror(errno));
    if (!found || !S_ISREG(sb.st_mode))
        return di_fail(msg, cap, DI_ENOTFOUND, "store: no blob '%.200s'", key);
    *size = (uint64_t)sb.st_size;
    return 0;
}

/* ---- Deleting --------------------------------------------------------- */

/* Removes the now-empty directories between path's parent and the root,
 * so a deleted job leaves no "uploads/{id}/" behind. Stops at the first
 * directory that is not empty. */
static void prune_empty(FsStore *fs, char *path) {
    size_t root_len = strlen(fs->root);
    for (;;) {
        char *slash = strrchr(path, '/');
        if (!slash || (size_t)(slash - path) <= root_len) return;
        *slash = 0;
        if (rmdir(path) != 0) return;
    }
}

static int fs_remove(void *state, const char *key, char *msg, size_t cap) {
    char path[PATH_MAX];
    if (join(state, key, path, sizeof path) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: key too long");
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0; /* not a blob */
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR)
        return di_fail(msg, cap, DI_EIO, "store: delete '%.200s': %s", key, strerror(errno));
    prune_empty(state, path);
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    return rc != 0 && errno != ENOENT ? -1 : 0;
}

static int rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* "a/b/" removes the directory a/b; "a/bc" removes every entry of a whose
 * name starts with "bc", as S3's prefix match would. */
static int fs_remove_prefix(void *state, const char *prefix, char *msg, size_t cap) {
    FsStore *fs = state;
    char path[PATH_MAX];
    if (join(fs, prefix, path, sizeof path) < 0)
        return di_fail(msg, cap, DI_EINVAL, "store: prefix too long");
    size_t len = strlen(path);
    int rc = 0;
    if (path[len - 1] == '/') {
        path[len - 1] = 0;
        rc = rm_tree(path);
    } else {
        char *slash = strrchr(path, '/');
        *slash = 0;
        const char *start = slash + 1;
        size_t start_len = strlen(start);
        DIR *d = opendir(path);
        if (!d)
            return errno == ENOENT || errno == ENOTDIR
                       ? 0
                       : di_fail(msg, cap, DI_EIO, "store: opendir failed");
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, start, start_len) != 0) continue;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[PATH_MAX];
            if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child)
                continue;
            if (rm_tree(child) < 0) rc = -1;
        }
        closedir(d);
        *slash = '/'; /* prune from the matched entries' directory up */
    }
    if (rc < 0)
        return di_fail(msg, cap, DI_EIO, "store: delete prefix '%.200s': %s", prefix,
                       strerror(errno));
    prune_empty(fs, path);
    return 0;
}

/* nftw has no user pointer, so the sweep's parameters live here; a mutex
 * keeps concurrent sweeps in one process from sharing them. */
static pthread_mutex_t sweep_lock = PTHREAD_MUTEX_INITIALIZER;
static double sweep_cutoff;
static int sweep_count;

static char sweep_root[PATH_MAX];

/* Whether the process that named a temp file (STORE_TEMP_PREFIX<pid>.<rnd>)
 * is gone: its write can never commit. The data directory belongs to one
 * machine, so the pid means something here. */
static int writer_dead(const char *name) {
    char *end;
    long pid = strtol(name + strlen(STORE_TEMP_PREFIX), &end, 10);
    if (pid <= 0 || *end != '.' || pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int sweep_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    /* Directories come after their contents (FTW_DEPTH): one emptied by the
     * sweep goes too, so a crashed upload leaves no "uploads/{id}/". */
    if (flag == FTW_DP) {
        if (sweep_count && strcmp(path, sweep_root) != 0) rmdir(path);
        return 0;
    }
    if (flag != FTW_F || !S_ISREG(sb->st_mode)) return 0;
    const char *name = path + ftw->base;
    if (strncmp(name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)) != 0) return 0;
    double mtime = (double)sb->st_mtim.tv_sec + sb->st_mtim.tv_nsec * 1e-9;
    if ((mtime <= sweep_cutoff || writer_dead(name)) && unlink(path) == 0) sweep_count++;
    return 0;
}

static int fs_sweep_temp(void *state, double min_age_s, int *removed, char *msg, size_t cap) {
    FsStore *fs = state;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&sweep_lock);
    sweep_cutoff = (double)now.tv_sec + now.tv_nsec * 1e-9 - min_age_s;
    sweep_count = 0;
    snprintf(sweep_root, sizeof sweep_root, "%s", fs->root);
    int rc = nftw(fs->root, sweep_entry, 16, FTW_PHYS | FTW_DEPTH);
    *removed = sweep_count;
    pthread_mutex_unlock(&sweep_lock);
    if (rc != 0) return di_fail(msg, cap, DI_EIO, "store: sweep of '%.200s' failed", fs->root);
    return 0;
}

const StoreBackend store_fs_backend = {
    .name = "fs",
    .accepts = fs_accepts,
    .open = fs_open,
    .close = fs_close,
    .open_write = fs_open_write,
    .open_read = fs_open_read,
    .get_file = fs_get_file,
    .stat = fs_stat,
    .remove = fs_remove,
    .remove_prefix = fs_remove_prefix,
    .sweep_temp = fs_sweep_temp,
};
