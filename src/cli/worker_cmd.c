/* diarist worker: transcription workers on the service's backends. */
#include "api/api.h"
#include "cli/cli.h"
#include "metrics/metrics.h"
#include "worker/worker.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int stop_flag;

/* SIGTERM and SIGINT stop taking work; the workers finish what they hold. */
static void on_signal(int sig) {
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: diarist worker [options]\n\n"
        "Takes jobs from the queue under $DIARIST_DATA (see 'diarist serve') and\n"
        "transcribes them, then writes the diary note. SIGTERM or Ctrl-C stops taking\n"
        "work, finishes the jobs in hand and exits 0.\n\n"
        "  -m, --model PATH|NAME   Whisper model (default $DIARIST_MODEL, else " CLI_SERVICE_MODEL
        ",\n"
        "                          downloaded into the model directory on first start)\n"
        "  -n, --workers N         concurrent jobs (1; at least --batch when batching)\n"
        "  -t, --threads N         engine threads per job (default: cores / workers), or\n"
        "                          of the shared engine when batching (default: cores)\n"
        "  -b, --batch N           decode up to N windows (of several jobs, or pieces of\n"
        "                          long files) as one batch on one shared engine, 1..7\n"
        "                          (default $DIARIST_BATCH, else 1: each job alone). Each\n"
        "                          job's transcript is the same either way\n"
        "      --chunk S           cut audio longer than 1.25 x S seconds at the quietest\n"
        "                          half second near every S seconds, and decode the pieces\n"
        "                          independently so one long file fills the batch (default\n"
        "                          $DIARIST_CHUNK_SECONDS, else 0: never; at least 5)\n"
        "  -l, --language CODE     spoken language, or 'auto'\n"
        "      --beam-size N       beam search with N beams (default greedy; the seed used 5)\n"
        "      --best-of N         candidates sampled at temperature > 0 (default 5)\n"
        "      --visibility S      lease on a job in seconds (default 300)\n"
        "      --no-fallback       never retry a window at a higher temperature\n"
        "      --no-note           complete jobs without a diary note\n"
        "      --metrics-port P    serve GET /metrics (Prometheus text) on port P for this\n"
        "                          process, bound to $DIARIST_METRICS_HOST (0.0.0.0); also\n"
        "                          $DIARIST_METRICS_PORT. 'diarist run' has it on its API\n\n"
        "A job uploaded with a callback_url gets its final JSON POSTed there, retried\n"
        "for up to $DIARIST_CALLBACK_DEADLINE_S seconds (300).\n");
}

enum {
    OPT_BEAM = 256,
    OPT_BEST_OF,
    OPT_VIS,
    OPT_NO_FALLBACK,
    OPT_NO_NOTE,
    OPT_METRICS_PORT,
    OPT_CHUNK
};

static const struct option long_opts[] = {
    {"model", required_argument, 0, 'm'},
    {"workers", required_argument, 0, 'n'},
    {"threads", required_argument, 0, 't'},
    {"batch", required_argument, 0, 'b'},
    {"chunk", required_argument, 0, OPT_CHUNK},
    {"language", required_argument, 0, 'l'},
    {"beam-size", required_argument, 0, OPT_BEAM},
    {"best-of", required_argument, 0, OPT_BEST_OF},
    {"visibility", required_argument, 0, OPT_VIS},
    {"no-fallback", no_argument, 0, OPT_NO_FALLBACK},
    {"no-note", no_argument, 0, OPT_NO_NOTE},
    {"metrics-port", required_argument, 0, OPT_METRICS_PORT},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int bad_value(const char *opt, const char *value) {
    fprintf(stderr, "diarist worker: invalid value '%s' for %s\n", value, opt);
    return 2;
}

/* worker, or with_api: API and workers in one process (diarist run). */
static int worker_main(int argc, char **argv, int with_api) {
    WorkerConfig cfg = worker_default_config();
    const char *model_flag = NULL;
    int threads = 0, no_note = 0, metrics_port = -1, c;
    const char *env_port = getenv("DIARIST_METRICS_PORT");
    if (env_port && *env_port && cli_int(env_port, 1, 65535, &metrics_port))
        return bad_value("DIARIST_METRICS_PORT", env_port);
    const char *env_batch = getenv("DIARIST_BATCH");
    if (env_batch && *env_batch && cli_int(env_batch, 1, WHISPER_BATCH_MAX_LANES, &cfg.batch))
        return bad_value("DIARIST_BATCH", env_batch);
    const char *env_chunk = getenv("DIARIST_CHUNK_SECONDS");
    if (env_chunk && *env_chunk && strcmp(env_chunk, "0") != 0 &&
        cli_float(env_chunk, 5, 86400, &cfg.params.chunk_seconds))
        return bad_value("DIARIST_CHUNK_SECONDS", env_chunk);
    float vis;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:n:t:b:l:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_flag = optarg;
            break;
        case 'n':
            if (cli_int(optarg, 1, 256, &cfg.n_workers)) return bad_value("--workers", optarg);
            break;
        case 't':
            if (cli_int(optarg, 1, 256, &threads)) return bad_value("--threads", optarg);
            break;
        case 'b':
            if (cli_int(optarg, 1, WHISPER_BATCH_MAX_LANES, &cfg.batch))
                return bad_value("--batch", optarg);
            break;
        case OPT_CHUNK:
            if (strcmp(optarg, "0") == 0)
                cfg.params.chunk_seconds = 0;
            else if (cli_float(optarg, 5, 86400, &cfg.params.chunk_seconds))
                return bad_value("--chunk", optarg);
            break;
        case 'l':
            cfg.params.language = optarg;
            break;
        case OPT_BEAM:
            if (cli_int(optarg, 0, 16, &cfg.params.beam_size))
                return bad_value("--beam-size", optarg);
            break;
        case OPT_BEST_OF:
            if (cli_int(optarg, 1, 16, &cfg.params.best_of)) return bad_value("--best-of", optarg);
            break;
        case OPT_VIS:
            if (cli_float(optarg, 3, QUEUE_MAX_VISIBILITY_S, &vis))
                return bad_value("--visibility", optarg);
            cfg.visibility_s = vis;
            break;
        case OPT_NO_FALLBACK:
            cfg.params.temperature_increment = 0;
            break;
        case OPT_NO_NOTE:
            no_note = 1;
            break;
        case OPT_METRICS_PORT:
            if (cli_int(optarg, 1, 65535, &metrics_port))
                return bad_value("--metrics-port", optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    const char *model_path = cli_service_model_path(model_flag);
    if (!model_path) return 1;
    /* Each job gets its share of the cores unless told otherwise; a shared
     * engine gets them all. */
    if (!threads) threads = cli_default_threads() / (cfg.batch > 1 ? 1 : cfg.n_workers);
    if (cfg.batch > 1 && cfg.n_workers < cfg.batch) cfg.n_workers = cfg.batch;
    cfg.n_threads = threads > 0 ? threads : 1;

    char msg[1024];
    CliBackends b;
    if (cli_backends_open(&b, msg, sizeof msg)) {
        fprintf(stderr, "diarist worker: %s\n", msg);
        return 1;
    }
    WhisperModel *model = NULL;
    NoteGenerator *notes = NULL;
    MetricsServer *scrape = NULL; /* a lone worker's scrape endpoint */
    int status = 1;
    if (whisper_model_load(model_path, &model, msg, sizeof msg)) {
        fprintf(stderr, "diarist worker: %s\n", msg);
        goto done;
    }
    NoteConfig ncfg = notes_config_from_env();
    if (!no_note && notes_generator_create(&ncfg, &notes, msg, sizeof msg)) {
        fprintf(stderr, "diarist worker: %s\n", msg);
        goto done;
    }
    cfg.store = b.store;
    cfg.meta = b.meta;
    cfg.queue = b.queue;
    cfg.model = model;
    cfg.notes = notes;
    cfg.timezone = cli_timezone();
    cfg.stop = &stop_flag;
    if (callback_config_from_env(&cfg.callback, msg, sizeof msg)) {
        fprintf(stderr, "diarist worker: %s\n", msg);
        status = 2;
        goto done;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not end the process */

    Api *api = NULL;
    if (metrics_port > 0) {
        const char *host = getenv("DIARIST_METRICS_HOST");
        if (!host || !*host) host = "0.0.0.0";
        if (metrics_serve(host, metrics_port, &scrape, msg, sizeof msg)) {
            fprintf(stderr, "diarist worker: %s\n", msg);
            goto done;
        }
        di_log("info", "metrics on http://%s:%d/metrics", host, metrics_server_port(scrape));
    }
    if (with_api) {
        ApiConfig acfg;
        api_config_defaults(&acfg);
        if (api_config_from_env(&acfg, msg, sizeof msg)) {
            fprintf(stderr, "diarist run: %s\n", msg);
            status = 2;
            goto done;
        }
        acfg.store = b.store;
        acfg.meta = b.meta;
        acfg.queue = b.queue;
        if (api_start(&acfg, &api, msg, sizeof msg)) {
            fprintf(stderr, "diarist run: %s\n", msg);
            goto done;
        }
        di_log("info", "serving on http://%s:%d/", acfg.host, api_port(api));
    }
    di_log("info",
           "worker: model %s from %s, %d workers, %d threads %s, batch %d, chunks %g s, "
           "notes %s",
           whisper_model_type(model), model_path, cfg.n_workers, cfg.n_threads,
           cfg.batch > 1 ? "in the shared engine" : "each", cfg.batch,
           (double)cfg.params.chunk_seconds, notes ? notes->name : "off");
    int rc = worker_run(&cfg, msg, sizeof msg);
    api_stop(api); /* after the workers: uploads keep landing until the end */
    metrics_server_stop(scrape);
    scrape = NULL;
    if (rc) {
        fprintf(stderr, "diarist worker: %s\n", msg);
        goto done;
    }
    di_log("info", "worker: stopped");
    status = 0;
done:
    metrics_server_stop(scrape);
    notes_generator_free(notes);
    whisper_model_free(model);
    cli_backends_close(&b);
    return status;
}

int cmd_worker(int argc, char **argv) {
    return worker_main(argc, argv, 0);
}

int cmd_run(int argc, char **argv) {
    return worker_main(argc, argv, 1);
}
