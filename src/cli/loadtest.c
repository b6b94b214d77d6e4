/*
 * diarist loadtest: the seed's load test (tests/load_test.py) as a
 * subcommand, on libcurl.
 *
 * W uploader threads take request numbers from one atomic counter and POST
 * the --file list, in turn, to /upload-audio/. With --monitor, W poller
 * threads start at the same time and poll /status/{id} of every job that
 * has been uploaded until it is completed, in error, or past its timeout,
 * so a job's completion latency (upload start to the poll that saw it
 * completed) does not wait for the last upload. Poller t owns jobs i with
 * i % W == t; a job's fields are written by its uploader before its state
 * turns pending (release) and by its poller afterwards, so no lock is
 * needed.
 *
 * The report is the seed's (total, successful, failed, total time, mean
 * upload time, requests per second) plus upload and completion latency
 * percentiles and throughput in audio hours per hour; --json prints it as
 * one object. Diagnostics are JSON log lines on stderr.
 */
#include "audio/audio.h"
#include "cli/cli.h"
#include "core/core.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FILES 64
#define MAX_WORKERS 256
#define LOGGED_FAILURES 20  /* past this, failures are only counted */
#define MAX_BODY (1u << 20) /* answers are small JSON; cap what we keep */
#define UPLOAD_STALL_S 60   /* an upload that moves no byte this long fails */
#define POLL_TIMEOUT_S 30   /* one status request */

typedef struct {
    const char *path;
    double seconds; /* audio duration, measured once */
} LoadFile;

typedef struct {
    char url[2048]; /* base URL without a trailing slash */
    int requests, workers, monitor, json;
    double poll_s, timeout_s;
    LoadFile files[MAX_FILES];
    int n_files;
} LoadConfig;

enum { LT_FAILED, LT_PENDING, LT_COMPLETED, LT_ERROR, LT_TIMEOUT };

typedef struct {
    char job_id[64];
    double t_start, t_uploaded, t_done; /* di_now() */
    atomic_int state;                   /* LT_*; LT_FAILED until uploaded */
} LoadJob;

typedef struct {
    const LoadConfig *cfg;
    LoadJob *jobs;
    atomic_int next;         /* next request number to upload */
    atomic_int uploads_done; /* every uploader has finished */
    atomic_int logged;       /* failures logged so far */
} LoadRun;

typedef struct {
    LoadRun *run;
    int index;
} LoadThread;

typedef struct {
    char *data;
    size_t len;
} Body;

static void usage(FILE *f) {
    fprintf(f, "usage: diarist loadtest [options] --file F [--file F ...]\n\n"
               "The seed's load test against a running service (diarist run, or serve and\n"
               "workers): uploads N files with W concurrent clients and, with --monitor, polls\n"
               "each job until it is completed or in error. Prints total, successful and\n"
               "failed requests, total time, mean upload time, requests per second, upload\n"
               "latency p50/p95/p99 and, with --monitor, completion latency p50/p95/p99 and\n"
               "throughput in audio hours per hour. Exit status: 0 when every upload\n"
               "succeeded (and every job completed), 1 otherwise, 2 usage error.\n\n"
               "      --file F            audio to upload (repeat for several; requests take them\n"
               "                          in turn); at least one is required. Each is decoded\n"
               "                          once to learn its duration. FILE arguments count too.\n"
               "      --requests N        uploads (default 10)\n"
               "      --workers W         concurrent clients (default 5)\n"
               "      --monitor           poll /status/{id} until every job ends\n"
               "      --poll-interval S   seconds between polls of a job (default 5)\n"
               "      --timeout S         seconds a job may take after its upload (default 300)\n"
               "      --url URL           the API (default $API_URL, else http://localhost:8000)\n"
               "      --json              print the report as one JSON object\n");
}

enum {
    OPT_FILE = 256,
    OPT_REQUESTS,
    OPT_WORKERS,
    OPT_MONITOR,
    OPT_POLL,
    OPT_TIMEOUT,
    OPT_URL,
    OPT_JSON
};

static const struct option long_opts[] = {
    {"file", required_argument, 0, OPT_FILE},
    {"requests", required_argument, 0, OPT_REQUESTS},
    {"workers", required_argument, 0, OPT_WORKERS},
    {"monitor", no_argument, 0, OPT_MONITOR},
    {"poll-interval", required_argument, 0, OPT_POLL},
    {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"url", required_argument, 0, OPT_URL},
    {"json", no_argument, 0, OPT_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int bad_value(const char *opt, const char *value) {
    fprintf(stderr, "diarist loadtest: invalid value '%s' for %s\n", value, opt);
    return 2;
}

static int add_file(LoadConfig *cfg, const char *path) {
    if (cfg->n_files == MAX_FILES) {
        fprintf(stderr, "diarist loadtest: at most %d files\n", MAX_FILES);
        return 2;
    }
    cfg->files[cfg->n_files++].path = path;
    return -1;
}

static void set_url(LoadConfig *cfg, const char *url) {
    snprintf(cfg->url, sizeof cfg->url, "%s", url);
    /* Paths are appended with their own slash. */
    size_t n = strlen(cfg->url);
    while (n > 0 && cfg->url[n - 1] == '/')
        cfg->url[--n] = '\0';
}

/* Parses flags into cfg; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, LoadConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->requests = 10;
    cfg->workers = 5;
    cfg->poll_s = 5;
    cfg->timeout_s = 300;
    const char *env = getenv("API_URL");
    set_url(cfg, env && *env ? env : "http://localhost:8000");
    int c, rc;
    float v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_FILE:
            if ((rc = add_file(cfg, optarg)) >= 0) return rc;
            break;
        case OPT_REQUESTS:
            if (cli_int(optarg, 1, 10000000, &cfg->requests))
                return bad_value("--requests", optarg);
            break;
        case OPT_WORKERS:
            if (cli_int(optarg, 1, MAX_WORKERS, &cfg->workers))
                return bad_value("--workers", optarg);
            break;
        case OPT_MONITOR:
            cfg->monitor = 1;
            break;
        case OPT_POLL:
            if (cli_float(optarg, 0.01f, 3600, &v)) return bad_value("--poll-interval", optarg);
            cfg->poll_s = v;
            break;
        case OPT_TIMEOUT:
            if (cli_float(optarg, 0.1f, 86400 * 7, &v)) return bad_value("--timeout", optarg);
            cfg->timeout_s = v;
            break;
        case OPT_URL:
            if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
                return bad_value("--url", optarg);
            set_url(cfg, optarg);
            break;
        case OPT_JSON:
            cfg->json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    for (int i = optind; i < argc; i++)
        if ((rc = add_file(cfg, argv[i])) >= 0) return rc;
    if (!cfg->n_files) {
        /* No built-in sample: a load test of a file nobody chose measures nothing useful. */
        fprintf(stderr, "diarist loadtest: no audio to upload: pass --file F\n");
        return 2;
    }
    return -1;
}

/* Every file must be audio the service will take; its duration feeds the
 * audio-hours figure. */
static int measure_files(LoadConfig *cfg) {
    for (int i = 0; i < cfg->n_files; i++) {
        AudioPcm pcm;
        char msg[1024];
        if (audio_decode_file(cfg->files[i].path, &pcm, msg, sizeof msg)) {
            fprintf(stderr, "diarist loadtest: %s\n", msg);
            return -1;
        }
        cfg->files[i].seconds = pcm.duration;
        audio_pcm_free(&pcm);
    }
    return 0;
}

/* ---- HTTP ----------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    Body *b = ud;
    size_t add = size * n;
    if (b->len + add > MAX_BODY) return 0; /* not the API we expect: fail the request */
    char *d = realloc(b->data, b->len + add + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, add);
    b->len += add;
    d[b->len] = '\0';
    b->data = d;
    return add;
}

/* GET url, or POST the file at path as the multipart field "file". The
 * handle is reset, not recreated, so its connection is kept alive across
 * requests. Returns 0 with the HTTP status, or DI_EIO with curl's reason. */
static int http_call(CURL *h, const char *url, const char *path, long *status, Body *body,
                     char *msg, size_t cap) {
    char err[CURL_ERROR_SIZE] = "";
    curl_mime *mime = NULL;
    struct curl_slist *hdrs = NULL;
    body->len = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "diarist-loadtest/0.1.0");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: we are threaded */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (path) {
        mime = curl_mime_init(h);
        curl_mimepart *part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        if (curl_mime_filedata(part, path) != CURLE_OK) {
            curl_mime_free(mime);
            return di_fail(msg, cap, DI_EIO, "cannot read %s", path);
        }
        curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
        /* No "Expect: 100-continue" round trip before each body. */
        hdrs = curl_slist_append(NULL, "Expect:");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        /* A long file uploads for as long as bytes move; only a stall fails. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)UPLOAD_STALL_S);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)POLL_TIMEOUT_S);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_mime_free(mime);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK)
        return di_fail(msg, cap, DI_EIO, "%s (%s)", curl_easy_strerror(rc),
                       err[0] ? err : "no detail");
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* Reads a JSON answer's string field; a non-200 answer is an error that
 * quotes the service's "detail" (or the start of its body). */
static int answer_field(long status, const Body *b, const char *field, char *out, size_t n,
                        char *msg, size_t cap) {
    json_t *doc = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(doc, status == 200 ? field : "detail"));
    int rc = 0;
    if (status != 200)
        rc = di_fail(msg, cap, DI_EIO, "HTTP %ld: %.200s", status,
                     s        ? s
                     : b->len ? b->data
                              : "(empty body)");
    else if (!s || !*s || strlen(s) >= n)
        rc = di_fail(msg, cap, DI_EFORMAT, "answer has no \"%s\": %.200s", field,
                     b->len ? b->data : "(empty body)");
    else
        snprintf(out, n, "%s", s);
    json_decref(doc);
    return rc;
}

/* ---- Uploading and polling ------------------------------------------------- */

/* The first failures are logged one by one; after that a flood of the same
 * reason (a service that is down) would only bury the report. */
__attribute__((format(printf, 2, 3))) static void log_failure(LoadRun *r, const char *fmt, ...) {
    int n = atomic_fetch_add(&r->logged, 1);
    if (n < LOGGED_FAILURES) {
        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        di_log("error", "%s", line);
    } else if (n == LOGGED_FAILURES) {
        di_log("error", "more than %d failures: the rest are counted, not logged", LOGGED_FAILURES);
    }
}

static void upload_one(LoadRun *r, CURL *h, Body *b, int i) {
    const LoadConfig *cfg = r->cfg;
    LoadJob *j = &r->jobs[i];
    const char *path = cfg->files[i % cfg->n_files].path;
    char url[sizeof cfg->url + 32], msg[512];
    long status = 0;
    snprintf(url, sizeof url, "%s/upload-audio/", cfg->url);
    j->t_start = di_now();
    int rc = http_call(h, url, path, &status, b, msg, sizeof msg);
    j->t_uploaded = di_now();
    if (!rc) rc = answer_field(status, b, "job_id", j->job_id, sizeof j->job_id, msg, sizeof msg);
    if (rc) {
        log_failure(r, "request %d (%s): upload failed: %s", i + 1, path, msg);
        return;
    }
    atomic_store(&j->state, LT_PENDING); /* hands the job to its poller */
}

static void *uploader(void *arg) {
    LoadThread *t = arg;
    LoadRun *r = t->run;
    CURL *h = curl_easy_init();
    Body b = {0};
    for (int i; (i = atomic_fetch_add(&r->next, 1)) < r->cfg->requests;) {
        if (h) {
            upload_one(r, h, &b, i);
        } else {
            r->jobs[i].t_start = r->jobs[i].t_uploaded = di_now();
            log_failure(r, "request %d: upload failed: cannot create a curl handle", i + 1);
        }
    }
    free(b.data);
    curl_easy_cleanup(h);
    return NULL;
}

/* One poll of a pending job; moves it on when it has ended. */
static void poll_one(LoadRun *r, CURL *h, Body *b, LoadJob *j) {
    char url[sizeof r->cfg->url + 96], msg[512], state[32];
    long status = 0;
    snprintf(url, sizeof url, "%s/status/%s", r->cfg->url, j->job_id);
    int rc = http_call(h, url, NULL, &status, b, msg, sizeof msg);
    double now = di_now();
    if (!rc) rc = answer_field(status, b, "status", state, sizeof state, msg, sizeof msg);
    if (!rc && !strcmp(state, "completed")) {
        j->t_done = now;
        atomic_store(&j->state, LT_COMPLETED);
    } else if (!rc && !strcmp(state, "error")) {
        log_failure(r, "job %s ended in error (GET /result/%s has the reason)", j->job_id,
                    j->job_id);
        atomic_store(&j->state, LT_ERROR);
    } else if (status == 404) {
        /* The service forgot a job it acknowledged: lost. */
        log_failure(r, "job %s: %s", j->job_id, msg);
        atomic_store(&j->state, LT_ERROR);
    } else if (now - j->t_uploaded > r->cfg->timeout_s) {
        log_failure(r, "job %s: %s", j->job_id, rc ? msg : "not finished before --timeout");
        atomic_store(&j->state, LT_TIMEOUT);
    } else if (rc) {
        /* A failed poll is not a failed job: the next poll may get through. */
        di_log("warn", "job %s: status poll failed: %s", j->job_id, msg);
    }
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) == -1) {
    }
}

static void *poller(void *arg) {
    LoadThread *t = arg;
    LoadRun *r = t->run;
    const LoadConfig *cfg = r->cfg;
    CURL *h = curl_easy_init();
    Body b = {0};
    for (;;) {
        /* Read before the round: a job uploaded after it is seen next round. */
        int uploads_done = atomic_load(&r->uploads_done);
        double round = di_now();
        int pending = 0;
        for (int i = t->index; i < cfg->requests; i += cfg->workers) {
            LoadJob *j = &r->jobs[i];
            if (atomic_load(&j->state) != LT_PENDING) continue;
            if (h)
                poll_one(r, h, &b, j);
            else
                atomic_store(&j->state, LT_TIMEOUT);
            pending += atomic_load(&j->state) == LT_PENDING;
        }
        if (uploads_done && !pending) break;
        sleep_s(round + cfg->poll_s - di_now());
    }
    free(b.data);
    curl_easy_cleanup(h);
    return NULL;
}

/* Starts n threads running fn; returns how many started. */
static int start_threads(pthread_t *tid, LoadThread *args, int n, LoadRun *r, void *(*fn)(void *)) {
    for (int i = 0; i < n; i++) {
        args[i] = (LoadThread){r, i};
        if (pthread_create(&tid[i], NULL, fn, &args[i])) return i;
    }
    return n;
}

static void join_threads(pthread_t *tid, int n) {
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
}

/* ---- The report -------------------------------------------------------------- */

typedef struct {
    int total, ok, failed, completed, errored, timed_out;
    double upload_wall_s; /* first upload start to last upload end: the seed's "total time" */
    double run_wall_s;    /* the whole run, polling included */
    double mean_upload_s, rps, audio_s, audio_hours_per_hour;
    double up[3], done[3]; /* p50, p95, p99; NAN without samples */
} LoadReport;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentiles of v (sorted in place), so each is a latency
 * that was actually observed and p50 <= p95 <= p99. */
static void percentiles(double *v, int n, double out[3]) {
    static const double ps[3] = {50, 95, 99};
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    for (int k = 0; k < 3; k++) {
        int rank = (int)ceil(ps[k] / 100.0 * n);
        out[k] = n ? v[rank < 1 ? 0 : rank - 1] : NAN;
    }
}

static int build_report(const LoadConfig *cfg, const LoadJob *jobs, double t0, double t_end,
                        LoadReport *rep) {
    int n = cfg->requests;
    double *up = malloc(sizeof *up * (size_t)n), *done = malloc(sizeof *done * (size_t)n);
    if (!up || !done) {
        free(up);
        free(done);
        return DI_ENOMEM;
    }
    memset(rep, 0, sizeof *rep);
    rep->total = n;
    double first = INFINITY, last = t0, sum = 0;
    for (int i = 0; i < n; i++) {
        const LoadJob *j = &jobs[i];
        int state = atomic_load(&j->state);
        if (j->t_start < first) first = j->t_start;
        if (j->t_uploaded > last) last = j->t_uploaded;
        if (state == LT_FAILED) {
            rep->failed++;
            continue;
        }
        up[rep->ok++] = j->t_uploaded - j->t_start;
        sum += j->t_uploaded - j->t_start;
        if (state == LT_COMPLETED) {
            done[rep->completed++] = j->t_done - j->t_start;
            rep->audio_s += cfg->files[i % cfg->n_files].seconds;
        }
        rep->errored += state == LT_ERROR;
        rep->timed_out += state == LT_TIMEOUT;
    }
    rep->upload_wall_s = last - (isfinite(first) ? first : t0);
    rep->run_wall_s = t_end - t0;
    rep->mean_upload_s = rep->ok ? sum / rep->ok : NAN;
    rep->rps = rep->upload_wall_s > 0 ? n / rep->upload_wall_s : NAN;
    rep->audio_hours_per_hour = rep->run_wall_s > 0 ? rep->audio_s / rep->run_wall_s : NAN;
    percentiles(up, rep->ok, rep->up);
    percentiles(done, rep->completed, rep->done);
    free(up);
    free(done);
    return 0;
}

static json_t *num_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *pct_json(const double p[3]) {
    return json_pack("{s:o, s:o, s:o}", "p50", num_or_null(p[0]), "p95", num_or_null(p[1]), "p99",
                     num_or_null(p[2]));
}

static int print_json(const LoadConfig *cfg, const LoadJob *jobs, const LoadReport *rep) {
    json_t *ids = json_array();
    for (int i = 0; i < cfg->requests; i++)
        if (atomic_load(&jobs[i].state) != LT_FAILED)
            json_array_append_new(ids, json_string(jobs[i].job_id));
    json_t *o = json_pack(
        "{s:s, s:i, s:i, s:b, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "url", cfg->url,
        "requests", cfg->requests, "workers", cfg->workers, "monitor", cfg->monitor,
        "total_requests", rep->total, "successful", rep->ok, "failed", rep->failed, "total_time_s",
        num_or_null(rep->upload_wall_s), "mean_upload_s", num_or_null(rep->mean_upload_s),
        "requests_per_s", num_or_null(rep->rps), "upload_latency_s", pct_json(rep->up),
        "wall_time_s", num_or_null(rep->run_wall_s), "job_ids", ids);
    if (o && cfg->monitor) {
        json_object_set_new(o, "completed", json_integer(rep->completed));
        json_object_set_new(o, "errored", json_integer(rep->errored));
        json_object_set_new(o, "timed_out", json_integer(rep->timed_out));
        json_object_set_new(o, "completion_latency_s", pct_json(rep->done));
        json_object_set_new(o, "audio_seconds", json_real(rep->audio_s));
        json_object_set_new(o, "audio_hours_per_hour", num_or_null(rep->audio_hours_per_hour));
    }
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    if (!s) return DI_ENOMEM;
    printf("%s\n", s);
    free(s);
    return 0;
}

static void print_text(const LoadConfig *cfg, const LoadReport *rep) {
    printf("Load test against %s: %d requests, %d workers\n", cfg->url, cfg->requests,
           cfg->workers);
    printf("Total requests: %d\n", rep->total);
    printf("Successful requests: %d\n", rep->ok);
    printf("Failed requests: %d\n", rep->failed);
    printf("Total time: %.2f seconds\n", rep->upload_wall_s);
    if (rep->ok) printf("Mean upload time: %.3f seconds\n", rep->mean_upload_s);
    printf("Requests per second: %.2f\n", rep->rps);
    if (rep->ok)
        printf("Upload latency p50/p95/p99: %.3f / %.3f / %.3f seconds\n", rep->up[0], rep->up[1],
               rep->up[2]);
    if (!cfg->monitor) return;
    printf("Jobs completed: %d, error: %d, timed out: %d\n", rep->completed, rep->errored,
           rep->timed_out);
    if (rep->completed)
        printf("Completion latency p50/p95/p99: %.2f / %.2f / %.2f seconds\n", rep->done[0],
               rep->done[1], rep->done[2]);
    printf("Audio processed: %.1f seconds in %.2f seconds of wall time\n", rep->audio_s,
           rep->run_wall_s);
    printf("Throughput: %.2f audio hours per hour\n", rep->audio_hours_per_hour);
}

/* ---- The command --------------------------------------------------------------- */

static int run_load(const LoadConfig *cfg, LoadJob *jobs, double *t0, double *t_end) {
    LoadRun r = {.cfg = cfg, .jobs = jobs};
    pthread_t up[MAX_WORKERS], mon[MAX_WORKERS];
    LoadThread up_args[MAX_WORKERS], mon_args[MAX_WORKERS];
    *t0 = di_now();
    int n_mon = cfg->monitor ? start_threads(mon, mon_args, cfg->workers, &r, poller) : 0;
    int n_up = start_threads(up, up_args, cfg->workers, &r, uploader);
    join_threads(up, n_up);
    atomic_store(&r.uploads_done, 1);
    join_threads(mon, n_mon);
    *t_end = di_now();
    if (n_up < cfg->workers || n_mon < (cfg->monitor ? cfg->workers : 0)) {
        di_log("error", "could only start %d uploader and %d poller threads", n_up, n_mon);
        if (n_up == 0 || (cfg->monitor && n_mon < cfg->workers)) return DI_EINTERNAL;
    }
    return 0;
}

int cmd_loadtest(int argc, char **argv) {
    LoadConfig cfg;
    int rc = parse_args(argc, argv, &cfg);
    if (rc >= 0) return rc;
    if (measure_files(&cfg)) return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "diarist loadtest: cannot initialise libcurl\n");
        return 1;
    }
    LoadJob *jobs = calloc((size_t)cfg.requests, sizeof *jobs);
    int status = 1;
    if (!jobs) {
        fprintf(stderr, "diarist loadtest: out of memory\n");
        goto done;
    }
    di_log("info", "loadtest: %d requests, %d workers, %s%s", cfg.requests, cfg.workers, cfg.url,
           cfg.monitor ? ", monitoring" : "");
    double t0, t_end;
    LoadReport rep;
    if (run_load(&cfg, jobs, &t0, &t_end)) {
        fprintf(stderr, "diarist loadtest: cannot start its threads\n");
        goto done;
    }
    if (build_report(&cfg, jobs, t0, t_end, &rep)) {
        fprintf(stderr, "diarist loadtest: out of memory\n");
        goto done;
    }
    if (cfg.json) {
        if (print_json(&cfg, jobs, &rep)) {
            fprintf(stderr, "diarist loadtest: out of memory\n");
            goto done;
        }
    } else {
        print_text(&cfg, &rep);
    }
    fflush(stdout);
    status = rep.failed == 0 && (!cfg.monitor || rep.completed == rep.ok) ? 0 : 1;
done:
    free(jobs);
    curl_global_cleanup();
    return status;
}
