/* Tests for the blob store (src/store) through its fs backend: streaming
 * writes that appear only at commit, reads back, key checks, file-name
 * sanitising, deletes and the sweep of abandoned temp files. */
#include "testutil.h"

#include "core/core.h"
#include "store/store.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char msg[512];

static Store *open_store(const char *name) {
    char url[4096];
    snprintf(url, sizeof url, "file://%s", tu_tmp(name));
    Store *st = NULL;
    int rc = store_open(url, &st, msg, sizeof msg);
    assert_int_equal(rc, 0);
    assert_non_null(st);
    return st;
}

/* Deterministic bytes for chunk i, so the 20 MB blob can be checked
 * without ever holding it whole. */
static void fill_chunk(unsigned char *buf, size_t n, uint64_t i) {
    DiRng rng;
    di_rng_seed(&rng, 0xb10b0000 + i);
    for (size_t k = 0; k < n; k += 8) {
        uint64_t v = di_rng_next(&rng);
        memcpy(buf + k, &v, n - k < 8 ? n - k : 8);
    }
}

/* Counts directory entries (not . and ..) whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

enum { CHUNK = 65536, NCHUNKS = 320 }; /* 20 MiB */

static void test_stream_roundtrip(void **state) {
    (void)state;
    Store *st = open_store("s1");
    static unsigned char buf[CHUNK], got[CHUNK];
    StoreWriter *w;
    assert_int_equal(store_open_write(st, "uploads/job1/big.bin", &w, msg, sizeof msg), 0);
    for (int i = 0; i < NCHUNKS; i++) {
        fill_chunk(buf, CHUNK, (uint64_t)i);
        assert_int_equal(store_write(w, buf, CHUNK, msg, sizeof msg), 0);
        /* Not visible before commit, even half written. */
        if (i == NCHUNKS / 2)
            assert_int_equal(store_stat(st, "uploads/job1/big.bin", NULL, msg, sizeof msg),
                             DI_ENOTFOUND);
    }
    assert_int_equal(store_commit(w, msg, sizeof msg), 0);

    uint64_t size = 0;
    assert_int_equal(store_stat(st, "uploads/job1/big.bin", &size, msg, sizeof msg), 0);
    assert_int_equal(size, (uint64_t)CHUNK * NCHUNKS);

    /* Streaming read with an odd buffer size, checked chunk by chunk. */
    StoreReader *r;
    assert_int_equal(store_open_read(st, "uploads/job1/big.bin", &r, msg, sizeof msg), 0);
    assert_int_equal(store_reader_size(r), (uint64_t)CHUNK * NCHUNKS);
    uint64_t total = 0;
    for (int i = 0; i < NCHUNKS; i++) {
        fill_chunk(buf, CHUNK, (uint64_t)i);
        size_t have = 0;
        while (have < CHUNK) {
            size_t n = 0;
            size_t want = CHUNK - have < 10007 ? CHUNK - have : 10007;
            assert_int_equal(store_read(r, got + have, want, &n, msg, sizeof msg), 0);
            assert_true(n > 0);
            have += n;
        }
        assert_memory_equal(buf, got, CHUNK);
        total += have;
    }
    size_t n = 1;
    assert_int_equal(store_read(r, got, CHUNK, &n, msg, sizeof msg), 0);
    assert_int_equal(n, 0);
    assert_int_equal(total, (uint64_t)CHUNK * NCHUNKS);
    store_reader_close(r);

    /* Copy to a local file and compare it chunk by chunk. */
    const char *local = tu_tmp("big_copy.bin");
    assert_int_equal(store_get_file(st, "uploads/job1/big.bin", local, msg, sizeof msg), 0);
    FILE *f = fopen(local, "rb");
    assert_non_null(f);
    for (int i = 0; i < NCHUNKS; i++) {
        fill_chunk(buf, CHUNK, (uint64_t)i);
        assert_int_equal(fread(got, 1, CHUNK, f), CHUNK);
        assert_memory_equal(buf, got, CHUNK);
    }
    assert_int_equal(fread(got, 1, 1, f), 0);
    fclose(f);
    unlink(local);

    /* Overwriting a key replaces the blob whole. */
    assert_int_equal(store_put(st, "uploads/job1/big.bin", "tiny", 4, msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/job1/big.bin", &size, msg, sizeof msg), 0);
    assert_int_equal(size, 4);
    store_close(st);
}

static void test_abort_and_crash(void **state) {
    (void)state;
    Store *st = open_store("s2");
    StoreWriter *w;
    assert_int_equal(store_open_write(st, "uploads/j/a.wav", &w, msg, sizeof msg), 0);
    assert_int_equal(store_write(w, "RIFF....", 8, msg, sizeof msg), 0);
    store_abort(w);
    assert_int_equal(store_stat(st, "uploads/j/a.wav", NULL, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(count_entries(tu_tmp("s2/uploads/j"), ""), 0);

    /* A child process writes half a blob and dies without committing. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        StoreWriter *cw;
        if (store_open_write(st, "uploads/j/b.wav", &cw, NULL, 0) < 0) _exit(1);
        if (store_write(cw, "partial data", 12, NULL, 0) < 0) _exit(2);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(store_stat(st, "uploads/j/b.wav", NULL, msg, sizeof msg), DI_ENOTFOUND);
    StoreReader *r = NULL;
    assert_int_equal(store_open_read(st, "uploads/j/b.wav", &r, msg, sizeof msg), DI_ENOTFOUND);
    assert_null(r);
    /* Its temp file is there, but no key can name it. */
    assert_int_equal(count_entries(tu_tmp("s2/uploads/j"), STORE_TEMP_PREFIX), 1);

    /* A live writer's young temp file survives a sweep with an age limit;
     * the dead child's goes at once, with the directory it emptied. */
    StoreWriter *live;
    assert_int_equal(store_open_write(st, "uploads/k/c.wav", &live, msg, sizeof msg), 0);
    assert_int_equal(store_write(live, "RIFF", 4, msg, sizeof msg), 0);
    int removed = -1;
    assert_int_equal(store_sweep_temp(st, 3600, &removed, msg, sizeof msg), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(count_entries(tu_tmp("s2/uploads"), "j"), 0);
    assert_int_equal(count_entries(tu_tmp("s2/uploads/k"), STORE_TEMP_PREFIX), 1);
    /* Age 0 takes every temp file, the live writer's too. */
    assert_int_equal(store_sweep_temp(st, 0, &removed, msg, sizeof msg), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(count_entries(tu_tmp("s2"), "uploads"), 0);
    store_abort(live);
    store_close(st);
}

static void test_key_validation(void **state) {
    (void)state;
    Store *st = open_store("s3");
    const char *bad[] = {"../x",
                         "/etc/passwd",
                         "a/../../b",
                         "a\\b",
                         "",
                         "a//b",
                         "a/",
                         ".",
                         "..",
                         "a/./b",
                         "x/" STORE_TEMP_PREFIX "1.2",
                         "a\nb",
                         "a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(store_check_key(bad[i], msg, sizeof msg), DI_EINVAL);
        StoreWriter *w = NULL;
        assert_int_equal(store_open_write(st, bad[i], &w, msg, sizeof msg), DI_EINVAL);
        assert_null(w);
        assert_int_equal(store_stat(st, bad[i], NULL, msg, sizeof msg), DI_EINVAL);
        assert_int_equal(store_delete(st, bad[i], msg, sizeof msg), DI_EINVAL);
    }
    assert_int_equal(store_check_key(NULL, msg, sizeof msg), DI_EINVAL);
    char longkey[STORE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    assert_int_equal(store_check_key(longkey, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(store_check_key("uploads/123/my_memo.m4a", msg, sizeof msg), 0);
    assert_int_equal(store_check_key("a/.hidden/..x", msg, sizeof msg), 0);
    /* Prefixes: a trailing '/' is allowed, traversal is not. */
    assert_int_equal(store_delete_prefix(st, "../", msg, sizeof msg), DI_EINVAL);
    assert_int_equal(store_delete_prefix(st, "/", msg, sizeof msg), DI_EINVAL);
    assert_int_equal(store_delete_prefix(st, "", msg, sizeof msg), DI_EINVAL);
    assert_int_equal(store_delete_prefix(st, "a/../", msg, sizeof msg), DI_EINVAL);
    /* A URL no backend takes. */
    Store *none = NULL;
    assert_int_equal(store_open("gopher://x", &none, msg, sizeof msg), DI_EINVAL);
    assert_null(none);
    store_close(st);
}

static void check_name(const char *in, const char *want) {
    char out[256];
    assert_int_equal(store_sanitize_name(in, out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_equal(store_check_key(out, msg, sizeof msg), 0);
}

static void test_sanitize_name(void **state) {
    (void)state;
    check_name("../../etc/passwd", "passwd");
    check_name("my memo.m4a", "my_memo.m4a");
    check_name("..", "file");
    check_name("", "file");
    check_name(NULL, "file");
    check_name(".", "file");
    check_name("C:\\Users\\me\\rec 1.WAV", "rec_1.WAV");
    check_name("dir/", "file");
    check_name(".bashrc", "bashrc");
    check_name("\xe6\x97\xa5\xe8\xa8\x98.mp3", "file.mp3");
    check_name("a;rm -rf $(x).ogg", "arm_-rf_x.ogg");
    check_name("..hidden..", "hidden");
    check_name(STORE_TEMP_PREFIX "1.2", "diarist-tmp.1.2");

    char name[520], out[256];
    memset(name, 'n', 500);
    strcpy(name + 500, ".flac");
    assert_int_equal(store_sanitize_name(name, out, sizeof out), 0);
    assert_int_equal(strlen(out), STORE_NAME_MAX);
    assert_string_equal(out + STORE_NAME_MAX - 5, ".flac");
    assert_int_equal(out[0], 'n');
    /* A small buffer bounds the result too. */
    char small[32];
    assert_int_equal(store_sanitize_name(name, small, sizeof small), 0);
    assert_int_equal(strlen(small), 31);
    assert_string_equal(small + 26, ".flac");
    assert_int_equal(store_sanitize_name(name, small, 16), DI_EINVAL);
}

static void test_delete(void **state) {
    (void)state;
    Store *st = open_store("s4");
    assert_int_equal(store_put(st, "uploads/a1/x.wav", "1", 1, msg, sizeof msg), 0);
    assert_int_equal(store_put(st, "uploads/a1/y.wav", "22", 2, msg, sizeof msg), 0);
    assert_int_equal(store_put(st, "uploads/a2/x.wav", "333", 3, msg, sizeof msg), 0);
    assert_int_equal(store_put(st, "uploads/b1/x.wav", "4444", 4, msg, sizeof msg), 0);

    assert_int_equal(store_delete(st, "uploads/a1/x.wav", msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/a1/x.wav", NULL, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(store_delete(st, "uploads/a1/x.wav", msg, sizeof msg), 0); /* idempotent */
    assert_int_equal(store_delete(st, "never/was", msg, sizeof msg), 0);
    /* A "directory" is not a blob. */
    assert_int_equal(store_stat(st, "uploads/a1", NULL, msg, sizeof msg), DI_ENOTFOUND);

    assert_int_equal(store_delete_prefix(st, "uploads/a1/", msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/a1/y.wav", NULL, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(count_entries(tu_tmp("s4/uploads"), "a1"), 0); /* no empty dir left */
    uint64_t size;
    assert_int_equal(store_stat(st, "uploads/a2/x.wav", &size, msg, sizeof msg), 0);
    assert_int_equal(size, 3);

    /* A prefix without '/' matches like S3's: "uploads/a" takes a2, not b1. */
    assert_int_equal(store_delete_prefix(st, "uploads/a", msg, sizeof msg), 0);
    assert_int_equal(store_stat(st, "uploads/a2/x.wav", NULL, msg, sizeof msg), DI_ENOTFOUND);
    assert_int_equal(store_stat(st, "uploads/b1/x.wav", &size, msg, sizeof msg), 0);
    assert_int_equal(size, 4);
    assert_int_equal(store_delete_prefix(st, "nothing/here/", msg, sizeof msg), 0);

    assert_int_equal(store_get_file(st, "uploads/zz/none", tu_tmp("none"), msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_int_equal(access(tu_tmp("none"), F_OK), -1);
    store_close(st);
    store_close(NULL);
    store_abort(NULL);
    store_reader_close(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_roundtrip), cmocka_unit_test(test_abort_and_crash),
        cmocka_unit_test(test_key_validation),   cmocka_unit_test(test_sanitize_name),
        cmocka_unit_test(test_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
