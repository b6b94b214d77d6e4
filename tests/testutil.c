#include "testutil.h"
#include "whisper/whisper.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
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

/* tests/aws beside this file's source: CMake passes the source dir through
 * DIARIST_SOURCE; fall back to the working directory's tests/aws. */
static const char *aws_dir(void) {
    static char dir[4096];
    const char *src = getenv("DIARIST_SOURCE");
    snprintf(dir, sizeof dir, "%s/tests/aws", src && *src ? src : ".");
    return dir;
}

int tu_emulators_start(const char *which, TuEmulators *out) {
    memset(out, 0, sizeof *out);
    char ports[4200], data[4200], js[4200], mods[4200];
    snprintf(ports, sizeof ports, "%s", tu_tmp("emulators.ports"));
    snprintf(data, sizeof data, "%s", tu_tmp("emulators.data"));
    snprintf(js, sizeof js, "%s/emulators.js", aws_dir());
    snprintf(mods, sizeof mods, "%s/node_modules", aws_dir());
    struct stat sb;
    if (stat(mods, &sb) != 0) {
        fprintf(stderr, "emulators: %s is missing (run scripts/deps.sh)\n", mods);
        return -1;
    }
    unlink(ports);
    setenv("AWS_ACCESS_KEY_ID", "test", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "test", 1);
    setenv("AWS_DEFAULT_REGION", "us-east-1", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        char list[256];
        snprintf(list, sizeof list, "%s", which);
        char *argv[16] = {"node", js, data, ports};
        int n = 4;
        for (char *tok = strtok(list, " "); tok && n < 15; tok = strtok(NULL, " "))
            argv[n++] = tok;
        argv[n] = NULL;
        /* s3rver pages listings with DES tokens, in OpenSSL 3's legacy provider. */
        setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
        execvp("node", argv);
        _exit(127);
    }
    out->pid = pid;
    for (int i = 0; i < 300; i++) { /* up to 30 s: node starts slowly under load */
        FILE *f = fopen(ports, "r");
        if (f) {
            char name[32];
            int port;
            while (fscanf(f, "%31s %d", name, &port) == 2) {
                if (!strcmp(name, "s3")) out->s3 = port;
                if (!strcmp(name, "sqs")) out->sqs = port;
                if (!strcmp(name, "dynamodb")) out->dynamodb = port;
            }
            fclose(f);
            char url[64];
            if (out->s3)
                snprintf(url, sizeof url, "http://127.0.0.1:%d", out->s3),
                    setenv("S3_ENDPOINT", url, 1);
            if (out->sqs)
                snprintf(url, sizeof url, "http://127.0.0.1:%d", out->sqs),
                    setenv("SQS_ENDPOINT", url, 1);
            if (out->dynamodb)
                snprintf(url, sizeof url, "http://127.0.0.1:%d", out->dynamodb),
                    setenv("DYNAMODB_ENDPOINT", url, 1);
            return 0;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "emulators: node exited before it was ready\n");
            out->pid = 0;
            return -1;
        }
        usleep(100000);
    }
    fprintf(stderr, "emulators: not ready after 30 s\n");
    tu_emulators_stop(out);
    return -1;
}

void tu_emulators_stop(TuEmulators *e) {
    if (!e || e->pid <= 0) return;
    kill(e->pid, SIGTERM);
    int status;
    waitpid(e->pid, &status, 0);
    e->pid = 0;
}

struct WhisperModel *tu_synth_model(const char *preset, unsigned seed, const char *file) {
    char msg[512];
    WhisperSynthSpec spec = {.seed = seed,
                             .vocab_from = tu_shared("golden/ggml-micro-synthetic.en.bin")};
    assert_int_equal(whisper_synth_preset(preset, &spec.hp), 0);
    const char *path = tu_tmp(file);
    assert_int_equal(whisper_synth_write(path, &spec, msg, sizeof msg), 0);
    WhisperModel *m;
    assert_int_equal(whisper_model_load(path, &m, msg, sizeof msg), 0);
    remove(path);
    return m;
}
