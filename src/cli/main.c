/* diarist: one binary, subcommands. */
#include "cli/cli.h"
#include "models/models.h"
#include "whisper/whisper.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REEXEC_GUARD "DIARIST_BLAS_REEXEC"

static void usage(FILE *f) {
    fprintf(f, "usage: diarist <command> [options]\n\n"
               "commands:\n"
               "  transcribe   turn audio files into text with a Whisper model\n"
               "  note         turn a transcript into a structured diary entry\n"
               "  model        list, download or locate Whisper models\n"
               "  serve        run the HTTP API (uploads, status, results)\n"
               "  worker       transcribe queued jobs and write their diary notes\n"
               "  run          serve and worker in one process (the whole service)\n"
               "  loadtest     upload audio to a running service and measure it\n"
               "  init-aws     create the fleet's bucket, queues and tables (idempotent)\n"
               "  bench        measure the engine on this machine\n"
               "  gen-model    write a synthetic Whisper model (for tests and benchmarks)\n\n"
               "Run 'diarist <command> --help' for a command's options.\n");
}

/* OpenBLAS picks its kernels once, when it loads. Debian's picks weak ones
 * on CPUs newer than it knows, and environments often carry a stale
 * OPENBLAS_CORETYPE (a container built elsewhere, a copied shell profile).
 * If the kernels in use are weaker than this CPU supports, run this same
 * program again with the right ones; a user never has to. DIARIST_BLAS_CORE
 * names a family to use regardless, for whoever needs exactly that. */
static void ensure_blas_kernels(char **argv) {
    if (getenv(REEXEC_GUARD)) return;
    const char *forced = getenv("DIARIST_BLAS_CORE");
    const char *want = forced && *forced ? forced : whisper_blas_better_core();
    if (!want || !strcasecmp(want, whisper_blas_core())) return;
    const char *was = getenv("OPENBLAS_CORETYPE");
    if (was && !forced)
        di_log("info", "OPENBLAS_CORETYPE=%s is weaker than this CPU supports; using %s", was,
               want);
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(REEXEC_GUARD, "1", 1);
    execv("/proc/self/exe", argv);
    /* Still here: carry on with the slower kernels rather than fail. */
    di_log("warn", "could not re-execute to select OpenBLAS %s kernels (%s); running on %s", want,
           strerror(errno), whisper_blas_core());
}

int cli_default_threads(void) {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > 8 ? 8 : n;
}

int cli_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cli_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

const char *cli_model_path(const char *flag) {
    static char path[4096];
    const char *spec = flag && *flag ? flag : getenv("DIARIST_MODEL");
    if (!spec || !*spec) return NULL;
    /* A path, or a published name ("base.en") pulled into the model folder. */
    char msg[1024];
    if (models_resolve(spec, NULL, path, sizeof path, msg, sizeof msg)) {
        fprintf(stderr, "diarist: %s\n", msg);
        return NULL;
    }
    return path;
}

const char *cli_service_model_path(const char *flag) {
    const char *spec = flag && *flag ? flag : getenv("DIARIST_MODEL");
    if (spec && *spec) return cli_model_path(spec);
    static char path[4096];
    char msg[2048];
    int rc = models_resolve(CLI_SERVICE_MODEL, NULL, path, sizeof path, msg, sizeof msg);
    if (rc == 0) return path;
    if (rc == DI_ENOTFOUND) {
        /* A fresh machine: fetch the default once, as the seed's first run did. */
        di_log("info", "no model configured (DIARIST_MODEL): pulling %s, once", CLI_SERVICE_MODEL);
        rc = cli_model_pull(CLI_SERVICE_MODEL, NULL, path, sizeof path, msg, sizeof msg);
        if (rc == 0) return path;
    }
    fprintf(stderr,
            "diarist: no model configured and the default (%s) could not be fetched: %s\n"
            "diarist: set DIARIST_MODEL (or -m) to a whisper.cpp model file, or run "
            "'diarist model pull %s' where the network allows\n",
            CLI_SERVICE_MODEL, msg, CLI_SERVICE_MODEL);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("diarist 0.1.0\n");
        return 0;
    }
    /* Model management does no arithmetic: no reason to pick BLAS kernels. */
    if (!strcmp(cmd, "model")) return cmd_model(argc - 1, argv + 1);
    /* The API holds no model either. */
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    /* Nor does the load test, a client of the service. */
    if (!strcmp(cmd, "loadtest")) return cmd_loadtest(argc - 1, argv + 1);
    if (!strcmp(cmd, "init-aws")) return cmd_init_aws(argc - 1, argv + 1);
    ensure_blas_kernels(argv);
    if (!strcmp(cmd, "transcribe")) return cmd_transcribe(argc - 1, argv + 1);
    if (!strcmp(cmd, "worker")) return cmd_worker(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "note")) return cmd_note(argc - 1, argv + 1);
    if (!strcmp(cmd, "gen-model")) return cmd_gen_model(argc - 1, argv + 1);
    fprintf(stderr, "diarist: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
