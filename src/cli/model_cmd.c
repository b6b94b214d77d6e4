/* diarist model: list the published Whisper models, download one into the
 * model directory (verified by its SHA-1), or print where one lives. */
#include "cli/cli.h"
#include "models/models.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: diarist model list [--dir DIR]\n"
               "       diarist model pull NAME [--dir DIR]\n"
               "       diarist model path NAME [--dir DIR]\n\n"
               "  list   the published models, their sizes and SHA-1 checksums\n"
               "  pull   download a model into the model directory and verify it\n"
               "  path   print the file a model name (or path) resolves to\n\n"
               "  -d, --dir DIR   model directory (default $DIARIST_MODEL_DIR, else\n"
               "                  $XDG_CACHE_HOME/diarist/models, else ~/.cache/diarist/models)\n\n"
               "Downloads come from $DIARIST_MODEL_BASE_URL, else\n"
               "  " MODELS_DEFAULT_BASE_URL "\n");
}

/* "142 MiB", "1.5 GiB". */
static void human_size(uint64_t bytes, char *buf, size_t cap) {
    double mib = (double)bytes / (1024.0 * 1024.0);
    if (mib >= 1024.0)
        snprintf(buf, cap, "%.1f GiB", mib / 1024.0);
    else
        snprintf(buf, cap, "%.0f MiB", mib);
}

static int list(const char *dir) {
    char dbuf[4096], msg[512];
    if (!dir) dir = models_dir(dbuf, sizeof dbuf, 0, msg, sizeof msg) ? NULL : dbuf;
    printf("%-20s %9s  %-40s  %s\n", "NAME", "SIZE", "SHA-1", "STATUS");
    for (int i = 0; i < models_count(); i++) {
        const ModelInfo *m = models_at(i);
        char size[32], path[4352];
        human_size(m->size, size, sizeof size);
        struct stat st;
        int present = dir &&
                      snprintf(path, sizeof path, "%s/%s", dir, m->file) < (int)sizeof path &&
                      stat(path, &st) == 0 && S_ISREG(st.st_mode);
        printf("%-20s %9s  %-40s  %s\n", m->name, size, m->sha1, present ? "downloaded" : "");
    }
    if (dir) printf("\nmodel directory: %s\n", dir);
    return 0;
}

/* Progress on stderr: a redrawn bar on a terminal, else a log line every
 * tenth of the way (logs are read by programs, not eyes). */
typedef struct {
    const char *name;
    int tty;
    int last_tenth;
    int last_percent;
} Progress;

static void on_progress(void *ud, uint64_t done, uint64_t total) {
    Progress *p = ud;
    double mib = 1024.0 * 1024.0;
    int percent = total ? (int)(done * 100 / total) : 0;
    if (percent > 100) percent = 100; /* the table's sizes are rounded */
    if (p->tty) {
        if (percent == p->last_percent) return; /* redraw only when the figure moves */
        p->last_percent = percent;
        char bar[31];
        int filled = percent * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3d%%  %.1f / %.1f MiB ", p->name, bar, percent,
                (double)done / mib, (double)total / mib);
        return;
    }
    int tenth = percent / 10;
    if (tenth <= p->last_tenth) return;
    p->last_tenth = tenth;
    di_log("info", "progress: %s %d%% (%llu of %llu bytes)", p->name, tenth * 10,
           (unsigned long long)done, (unsigned long long)total);
}

int cli_model_pull(const char *name, const char *dir, char *path, size_t cap, char *msg,
                   size_t msgcap) {
    Progress p = {.name = name, .tty = isatty(STDERR_FILENO), .last_percent = -1};
    ModelsPullOptions opt = {.progress = on_progress, .progress_ud = &p};
    int rc = models_pull(name, NULL, dir, &opt, path, cap, msg, msgcap);
    if (p.tty && p.last_percent >= 0) fputc('\n', stderr);
    return rc;
}

static int pull(const char *name, const char *dir) {
    char path[4096], msg[2048];
    int rc = cli_model_pull(name, dir, path, sizeof path, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "diarist model pull: %s\n", msg);
        return rc == DI_EINVAL ? 2 : 1;
    }
    printf("%s\n", path);
    return 0;
}

static int path_of(const char *spec, const char *dir) {
    char path[4096], msg[2048];
    int rc = models_resolve(spec, dir, path, sizeof path, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "diarist model path: %s\n", msg);
        return rc == DI_EINVAL ? 2 : 1;
    }
    printf("%s\n", path);
    return 0;
}

int cmd_model(int argc, char **argv) {
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    const char *dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    /* getopt moved the operands to the end of argv + 1. */
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    if (!strcmp(sub, "list") && nargs == 0) return list(dir);
    if (!strcmp(sub, "pull") && nargs == 1) return pull(args[0], dir);
    if (!strcmp(sub, "path") && nargs == 1) return path_of(args[0], dir);
    if (strcmp(sub, "list") && strcmp(sub, "pull") && strcmp(sub, "path"))
        fprintf(stderr, "diarist model: unknown subcommand '%s'\n\n", sub);
    else
        fprintf(stderr, "diarist model %s: wrong number of arguments\n\n", sub);
    usage(stderr);
    return 2;
}
