#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_shared(const char *rel) {
    static char buf[4096];
    const char *root = getenv("DIARIST_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared", rel);
    return buf;
}

const char *tu_tmpdir(void) {
    static char dir[2048];
    if (!dir[0]) {
        const char *base = getenv("DIARIST_TMP");
        if (!base) base = "/tmp";
        mkdir(base, 0755);
        if (snprintf(dir, sizeof dir, "%s/t%ld", base, (long)getpid()) >= (int)sizeof dir)
            dir[sizeof dir - 1] = 0;
        mkdir(dir, 0755);
    }
    return dir;
}

const char *tu_tmp(const char *name) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ % 8];
    if (snprintf(b, 4096, "%s/%s", tu_tmpdir(), name) >= 4096) b[4095] = 0;
    return b;
}

void *tu_read(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0) {
        fclose(f);
        return NULL;
    }
    /* One byte more, kept 0, so text files can be used as strings. */
    char *data = malloc((size_t)n + 1);
    if (data && n > 0 && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    if (data) data[n] = 0;
    fclose(f);
    if (data && size) *size = (size_t)n;
    return data;
}

int tu_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    return (fclose(f) == 0 && w == size) ? 0 : -1;
}

int tu_sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

const char *tu_bin(void) {
    const char *b = getenv("DIARIST_BIN");
    return b ? b : "./diarist";
}
