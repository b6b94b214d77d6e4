/* `diarist serve`: the HTTP API alone. It holds no model; workers (in other
 * processes) share its data directory through the backends. */
#include "api/api.h"
#include "cli/cli.h"
#include "core/core.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: diarist serve\n\n"
            "Serves the HTTP API until SIGINT or SIGTERM. Configuration comes from the\n"
            "environment: API_HOST (0.0.0.0), API_PORT (8000), DIARIST_MAX_UPLOAD_MB (2048),\n"
            "DIARIST_API_THREADS (4), DIARIST_API_TIMEOUT_S (60), DIARIST_DATA (./diarist-data),\n"
            "DIARIST_STORE_URL, DIARIST_META_URL and DIARIST_QUEUE_URL.\n");
}

int cmd_serve(int argc, char **argv) {
    if (argc > 1) {
        int help = !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help");
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    char msg[1024];
    ApiConfig cfg;
    api_config_defaults(&cfg);
    if (api_config_from_env(&cfg, msg, sizeof msg)) {
        fprintf(stderr, "diarist: %s\n", msg);
        return 2;
    }
    /* Block the stop signals before any thread starts, so that only
     * sigwait below receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    CliBackends b;
    if (cli_backends_open(&b, msg, sizeof msg)) {
        fprintf(stderr, "diarist: %s\n", msg);
        return 1;
    }
    cfg.store = b.store;
    cfg.meta = b.meta;
    cfg.queue = b.queue;
    Api *api;
    if (api_start(&cfg, &api, msg, sizeof msg)) {
        fprintf(stderr, "diarist: %s\n", msg);
        cli_backends_close(&b);
        return 1;
    }
    di_log("info", "serving on http://%s:%d/", cfg.host, api_port(api));
    int sig = 0;
    sigwait(&stop, &sig);
    di_log("info", "signal %d: stopping", sig);
    api_stop(api);
    cli_backends_close(&b);
    return 0;
}
