/* The HTTP service: libmicrohttpd with its own polling threads (a pool),
 * keep-alive, a connection timeout for slow clients; a router that answers
 * the seed's endpoints and diarist's own; per-request logs and counters. */
#include "api/api.h"

#include "core/core.h"
#include "metrics/metrics.h"
#include "output/output.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STATUS 600
/* A temp blob untouched this long belongs to no live upload (idle
 * connections close after timeout_s). */
#define API_SWEEP_AGE_S 3600

struct Api {
    ApiConfig cfg;
    struct MHD_Daemon *daemon;
    int port;
    uint64_t answers[MAX_STATUS]; /* by HTTP status, updated atomically */
    /* Requests waiting for a synchronous job (Req.next), the one thread
     * that watches their jobs, and the lock over both. */
    pthread_mutex_t wlock;
    pthread_cond_t wake;
    struct Req *waits;
    pthread_t waiter;
    int waiter_started;
    int stopping;
};

/* One request, from its first call to its completion. */
typedef struct Req {
    double t0;
    unsigned status;
    char method[16];
    char path[256];
    int upload; /* POST /upload-audio/ or /v1/audio/transcriptions */
    ApiUpload *up;
    /* POST /v1/audio/transcriptions: its job, and the wait for it. */
    int sync;
    int waiting;     /* suspended (or resumed) in api->waits' care */
    int outcome;     /* WAIT_*; set by the waiter before it resumes */
    int job_ended;   /* the waiter's last look found the job finished */
    double deadline; /* di_now() after which the wait is a 504 */
    char job_id[40];
    char format[16];
    struct MHD_Connection *conn;
    struct Req *next;
} Req;

/* ---- Config --------------------------------------------------------------- */

void api_config_defaults(ApiConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->host, sizeof cfg->host, "0.0.0.0");
    cfg->port = API_DEFAULT_PORT;
    cfg->max_upload_bytes = (uint64_t)API_DEFAULT_MAX_UPLOAD_MB << 20;
    cfg->threads = API_DEFAULT_THREADS;
    cfg->timeout_s = API_DEFAULT_TIMEOUT_S;
    cfg->sync_timeout_s = API_DEFAULT_SYNC_TIMEOUT_S;
}

static int env_long(const char *name, long lo, long hi, long *out, char *msg, size_t cap) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return di_fail(msg, cap, DI_EINVAL, "%s=%s: expected a whole number from %ld to %ld", name,
                       v, lo, hi);
    *out = x;
    return 1;
}

int api_config_from_env(ApiConfig *cfg, char *msg, size_t cap) {
    const char *host = getenv("API_HOST");
    if (host && *host) {
        if (strlen(host) >= sizeof cfg->host)
            return di_fail(msg, cap, DI_EINVAL, "API_HOST is too long");
        snprintf(cfg->host, sizeof cfg->host, "%s", host);
    }
    long v;
    int rc;
    if ((rc = env_long("API_PORT", 0, 65535, &v, msg, cap)) < 0) return rc;
    if (rc) cfg->port = (int)v;
    if ((rc = env_long("DIARIST_MAX_UPLOAD_MB", 1, 1L << 20, &v, msg, cap)) < 0) return rc;
    if (rc) cfg->max_upload_bytes = (uint64_t)v << 20;
    if ((rc = env_long("DIARIST_API_THREADS", 1, 256, &v, msg, cap)) < 0) return rc;
    if (rc) cfg->threads = (int)v;
    if ((rc = env_long("DIARIST_API_TIMEOUT_S", 1, 86400, &v, msg, cap)) < 0) return rc;
    if (rc) cfg->timeout_s = (unsigned)v;
    if ((rc = env_long("DIARIST_SYNC_TIMEOUT_S", 1, 86400, &v, msg, cap)) < 0) return rc;
    if (rc) cfg->sync_timeout_s = (unsigned)v;
    return 0;
}

int api_valid_job_id(const char *s) {
    if (!s || strlen(s) != 36) return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex) return 0;
    }
    return 1;
}

/* ---- Answers -------------------------------------------------------------- */

/* Sends body (taken, freed by MHD) with the CORS header every answer has. */
static enum MHD_Result send_body(Req *rq, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, char *body, const char *allow) {
    if (!body) {
        status = 500;
        ctype = "application/json";
        body = strdup("{\"detail\": \"Out of memory\"}");
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES) rq->status = status;
    return ret;
}

static enum MHD_Result send_json(Req *rq, struct MHD_Connection *c, unsigned status, json_t *o) {
    char *s = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    return send_body(rq, c, status, "application/json", s, NULL);
}

static enum MHD_Result send_detail(Req *rq, struct MHD_Connection *c, unsigned status,
                                   const char *text) {
    return send_body(rq, c, status, "application/json", api_detail_json(text), NULL);
}

static enum MHD_Result not_allowed(Req *rq, struct MHD_Connection *c, const char *allow) {
    return send_body(rq, c, 405, "application/json", api_detail_json("Method Not Allowed"), allow);
}

/* The preflight the seed's open CORS answers: any origin, method, header. */
static enum MHD_Result preflight(Req *rq, struct MHD_Connection *c) {
    const char *want =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    char *body = strdup("OK");
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(2, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Allow-Methods",
                            "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", want && *want ? want : "*");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES) rq->status = 200;
    return ret;
}

/* ---- Job endpoints -------------------------------------------------------- */

/* Loads the job or answers 404/500; 1 when *job is filled. */
static int load_job(Api *api, Req *rq, struct MHD_Connection *c, const char *id, Job *job,
                    enum MHD_Result *ret) {
    memset(job, 0, sizeof *job);
    if (!api_valid_job_id(id)) {
        *ret = send_detail(rq, c, 404, "Job not found");
        return 0;
    }
    char msg[512];
    int rc = meta_get(api->cfg.meta, id, job, msg, sizeof msg);
    if (rc == DI_ENOTFOUND) {
        *ret = send_detail(rq, c, 404, "Job not found");
        return 0;
    }
    if (rc) {
        di_log("error", "job %s: %s", id, msg);
        *ret = send_detail(rq, c, 500, "Could not read the job record");
        return 0;
    }
    return 1;
}

static enum MHD_Result get_status(Api *api, Req *rq, struct MHD_Connection *c, const char *id) {
    Job job;
    enum MHD_Result ret;
    if (!load_job(api, rq, c, id, &job, &ret)) return ret;
    json_t *o = json_pack("{s:s, s:s, s:s?}", "job_id", job.job_id, "status",
                          job_state_name(job.state), "file_name", job.file_name);
    meta_job_free(&job);
    return send_json(rq, c, 200, o);
}

/* The segments array of a stored verbose_json (or the array itself). */
static json_t *segments_of(json_t *doc) {
    if (json_is_array(doc)) return doc;
    return json_object_get(doc, "segments");
}

static enum MHD_Result get_result(Api *api, Req *rq, struct MHD_Connection *c, const char *id) {
    Job job;
    enum MHD_Result ret;
    if (!load_job(api, rq, c, id, &job, &ret)) return ret;
    char *body = meta_job_result_json(&job);
    meta_job_free(&job);
    return send_body(rq, c, 200, "application/json", body, NULL);
}

static char *dup_json_str(json_t *v) {
    const char *s = json_string_value(v);
    return strdup(s ? s : "");
}

/* Rebuilds a WhisperResult from the job's stored verbose_json. */
static int result_from_job(const Job *job, WhisperResult *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->language, sizeof r->language, "%s", job->language ? job->language : "");
    r->duration = job->duration;
    r->text = strdup(job->transcription ? job->transcription : "");
    if (!r->text) return DI_ENOMEM;
    json_t *doc = job->segments_json ? json_loads(job->segments_json, 0, NULL) : NULL;
    json_t *segs = segments_of(doc);
    size_t n = json_array_size(segs);
    if (n) {
        r->segments = calloc(n, sizeof *r->segments);
        if (!r->segments) {
            json_decref(doc);
            return DI_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(segs, i);
        WhisperSegment *g = &r->segments[r->n_segments++];
        g->id = (int)i;
        g->seek = (int)json_integer_value(json_object_get(s, "seek"));
        g->start = json_number_value(json_object_get(s, "start"));
        g->end = json_number_value(json_object_get(s, "end"));
        g->text = dup_json_str(json_object_get(s, "text"));
        g->temperature = (float)json_number_value(json_object_get(s, "temperature"));
        g->avg_logprob = (float)json_number_value(json_object_get(s, "avg_logprob"));
        g->compression_ratio = (float)json_number_value(json_object_get(s, "compression_ratio"));
        g->no_speech_prob = (float)json_number_value(json_object_get(s, "no_speech_prob"));
        if (!g->text) {
            json_decref(doc);
            return DI_ENOMEM;
        }
    }
    json_decref(doc);
    return 0;
}

static const char *content_type_of(OutFormat f) {
    switch (f) {
    case OUT_TEXT:
        return "text/plain; charset=utf-8";
    case OUT_SRT:
        return "application/x-subrip; charset=utf-8";
    case OUT_VTT:
        return "text/vtt; charset=utf-8";
    default:
        return "application/json";
    }
}

static enum MHD_Result get_transcript(Api *api, Req *rq, struct MHD_Connection *c, const char *id) {
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    OutFormat fmt = OUT_TEXT;
    if (name && output_format_parse(name, &fmt))
        return send_detail(rq, c, 400, "Unknown format: use txt, json, verbose_json, srt or vtt");
    Job job;
    enum MHD_Result ret;
    if (!load_job(api, rq, c, id, &job, &ret)) return ret;
    if (job.state != JOB_COMPLETED) {
        char d[128];
        snprintf(d, sizeof d, "The transcript is not ready: the job is %s",
                 job_state_name(job.state));
        meta_job_free(&job);
        return send_detail(rq, c, 409, d);
    }
    WhisperResult r;
    char msg[256], *text = NULL;
    int rc = result_from_job(&job, &r);
    if (!rc) rc = output_render(&r, fmt, "transcribe", &text, msg, sizeof msg);
    whisper_result_free(&r);
    meta_job_free(&job);
    if (rc) return send_detail(rq, c, 500, "Could not render the transcript");
    return send_body(rq, c, 200, content_type_of(fmt), text, NULL);
}

static enum MHD_Result delete_job(Api *api, Req *rq, struct MHD_Connection *c, const char *id) {
    Job job;
    enum MHD_Result ret;
    if (!load_job(api, rq, c, id, &job, &ret)) return ret;
    meta_job_free(&job);
    /* Blobs first: if that fails the record stays and a retry finds it. */
    char prefix[64], msg[512];
    snprintf(prefix, sizeof prefix, "uploads/%s/", id);
    if (store_delete_prefix(api->cfg.store, prefix, msg, sizeof msg)) {
        di_log("error", "delete %s: %s", id, msg);
        return send_detail(rq, c, 500, "Could not delete the job's audio");
    }
    if (meta_delete(api->cfg.meta, id, msg, sizeof msg)) {
        di_log("error", "delete %s: %s", id, msg);
        return send_detail(rq, c, 500, "Could not delete the job record");
    }
    return send_json(rq, c, 200, json_pack("{s:s, s:b}", "job_id", id, "deleted", 1));
}

/* ---- Synchronous transcriptions ------------------------------------------ */

/* How a wait for a synchronous job ended. */
enum { WAIT_PENDING, WAIT_ENDED, WAIT_TIMED_OUT, WAIT_STOPPED };

/* How often the waiter looks at the waiting jobs: short next to a
 * transcription, long enough that a few hundred waits cost little. */
#define SYNC_POLL_S 0.15

static int is_sync_path(const char *url) {
    return !strcmp(url, "/v1/audio/transcriptions");
}

/* Adds OpenAI's error object beside the project's detail, so clients of
 * either API find the reason where they look. Takes body; NULL stays NULL. */
static char *with_openai_error(unsigned status, char *body) {
    json_t *o = body ? json_loads(body, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return body;
    }
    json_t *detail = json_object_get(o, "detail");
    const char *text = json_string_value(detail);
    const char *param = NULL;
    if (json_is_array(detail)) {
        /* FastAPI's 422: [{"loc": ["body", "file"], "msg": ...}] */
        json_t *first = json_array_get(detail, 0);
        text = json_string_value(json_object_get(first, "msg"));
        param = json_string_value(json_array_get(json_object_get(first, "loc"), 1));
    }
    json_t *err =
        json_pack("{s:s, s:s, s:s?, s:n}", "message", text ? text : "", "type",
                  status >= 500 ? "server_error" : "invalid_request_error", "param", param, "code");
    char *out = err && !json_object_set_new(o, "error", err) ? json_dumps(o, 0) : NULL;
    json_decref(o);
    if (!out) return body;
    free(body);
    return out;
}

static enum MHD_Result send_sync_error(Req *rq, struct MHD_Connection *c, unsigned status,
                                       const char *text) {
    return send_body(rq, c, status, "application/json",
                     with_openai_error(status, api_detail_json(text)), NULL);
}

/* An upload's answer; the transcription endpoint's refusals get OpenAI's
 * error object too. */
static enum MHD_Result send_upload(Req *rq, struct MHD_Connection *c, unsigned status, char *body) {
    if (rq->sync && status != 200) body = with_openai_error(status, body);
    return send_body(rq, c, status, "application/json", body, NULL);
}

/* Parks the connection (no request thread is held) until the waiter sees
 * the job end, the wait run out, or the API stop. */
static enum MHD_Result sync_wait(Api *api, Req *rq, struct MHD_Connection *c) {
    pthread_mutex_lock(&api->wlock);
    if (api->stopping) {
        pthread_mutex_unlock(&api->wlock);
        char d[160];
        snprintf(d, sizeof d, "The service is stopping; job %s stays queued: poll /status/%s",
                 rq->job_id, rq->job_id);
        return send_sync_error(rq, c, 503, d);
    }
    rq->waiting = 1;
    rq->outcome = WAIT_PENDING;
    rq->conn = c;
    rq->deadline = di_now() + api->cfg.sync_timeout_s;
    rq->next = api->waits;
    api->waits = rq;
    /* Suspended under the lock, so the waiter never resumes it first. */
    MHD_suspend_connection(c);
    pthread_cond_signal(&api->wake);
    pthread_mutex_unlock(&api->wlock);
    return MHD_YES;
}

/* The upload is complete: store and queue the job, then wait for it. */
static enum MHD_Result sync_start(Api *api, Req *rq, struct MHD_Connection *c) {
    char *body;
    unsigned st = api_upload_finish(rq->up, &body);
    if (st != 200) return send_upload(rq, c, st, body);
    free(body);
    snprintf(rq->job_id, sizeof rq->job_id, "%s", api_upload_job_id(rq->up));
    snprintf(rq->format, sizeof rq->format, "%s", api_upload_format(rq->up));
    return sync_wait(api, rq, c);
}

/* Deletes the answered job: it is someone's diary, and the client has no
 * job id to delete it with. */
static void sync_forget(Api *api, const char *id) {
    char prefix[64], msg[512];
    snprintf(prefix, sizeof prefix, "uploads/%s/", id);
    if (store_delete_prefix(api->cfg.store, prefix, msg, sizeof msg) ||
        meta_delete(api->cfg.meta, id, msg, sizeof msg))
        di_log("error", "job %s: cannot delete the answered job: %s", id, msg);
}

/* A failure in what the client sent (not audio, options the model cannot
 * honour) rather than in the service; the worker's reasons start so. */
static int client_fault(const char *reason) {
    return reason && (!strncmp(reason, "cannot read the audio", 21) ||
                      !strncmp(reason, "invalid options", 15));
}

static enum MHD_Result sync_render(Req *rq, struct MHD_Connection *c, const Job *job) {
    OutFormat fmt = OUT_JSON;
    output_format_parse(rq->format, &fmt); /* checked at upload */
    WhisperResult r;
    char msg[256], *text = NULL;
    int rc = result_from_job(job, &r);
    if (!rc) rc = output_render(&r, fmt, "transcribe", &text, msg, sizeof msg);
    whisper_result_free(&r);
    if (rc) return send_sync_error(rq, c, 500, "Could not render the transcript");
    return send_body(rq, c, 200, content_type_of(fmt), text, NULL);
}

/* The connection is back from the waiter: answer from the job record. */
static enum MHD_Result sync_answer(Api *api, Req *rq, struct MHD_Connection *c) {
    char d[256], msg[512];
    if (rq->outcome != WAIT_ENDED) {
        int timed_out = rq->outcome == WAIT_TIMED_OUT;
        if (timed_out)
            snprintf(d, sizeof d,
                     "The transcription did not finish within %u s; job %s goes on: poll "
                     "/status/%s",
                     api->cfg.sync_timeout_s, rq->job_id, rq->job_id);
        else
            snprintf(d, sizeof d, "The service is stopping; job %s stays queued: poll /status/%s",
                     rq->job_id, rq->job_id);
        return send_sync_error(rq, c, timed_out ? 504 : 503, d);
    }
    Job job;
    int rc = meta_get(api->cfg.meta, rq->job_id, &job, msg, sizeof msg);
    if (rc) {
        di_log("error", "job %s: %s", rq->job_id, msg);
        return send_sync_error(rq, c, 500,
                               rc == DI_ENOTFOUND ? "The job was deleted before it finished"
                                                  : "Could not read the job record");
    }
    enum MHD_Result ret;
    if (job.state == JOB_COMPLETED) {
        ret = sync_render(rq, c, &job);
    } else {
        const char *why = job.error ? job.error : "The transcription failed";
        ret = send_sync_error(rq, c, client_fault(job.error) ? 400 : 500, why);
    }
    meta_job_free(&job);
    sync_forget(api, rq->job_id);
    return ret;
}

/* Whether the job has finished (or vanished); errors read as not yet. */
static int job_ended(Api *api, const char *id) {
    Job job = {0};
    char msg[512];
    int rc = meta_get(api->cfg.meta, id, &job, msg, sizeof msg);
    int ended =
        rc == DI_ENOTFOUND || (!rc && (job.state == JOB_COMPLETED || job.state == JOB_ERROR));
    if (rc && rc != DI_ENOTFOUND) di_log("warn", "job %s: %s", id, msg);
    meta_job_free(&job);
    return ended;
}

/* Resumes, and forgets, each wait that has an outcome. Under wlock. After
 * MHD_resume_connection the Req belongs to its request thread again. */
static void resume_decided(Api *api, double now) {
    for (Req **p = &api->waits; *p;) {
        Req *r = *p;
        if (r->job_ended)
            r->outcome = WAIT_ENDED;
        else if (api->stopping)
            r->outcome = WAIT_STOPPED;
        else if (now >= r->deadline)
            r->outcome = WAIT_TIMED_OUT;
        if (r->outcome == WAIT_PENDING) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        MHD_resume_connection(r->conn);
    }
}

/* The one thread that watches every waiting job. Only it removes waits, and
 * request threads only push new ones at the head, so the list from a head
 * taken under the lock can be walked without it while meta answers. */
static void *waiter_main(void *arg) {
    Api *api = arg;
    pthread_mutex_lock(&api->wlock);
    while (!api->stopping) {
        if (!api->waits) {
            pthread_cond_wait(&api->wake, &api->wlock);
            continue;
        }
        Req *head = api->waits;
        pthread_mutex_unlock(&api->wlock);
        for (Req *r = head; r; r = r->next)
            r->job_ended = job_ended(api, r->job_id);
        pthread_mutex_lock(&api->wlock);
        resume_decided(api, di_now());
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(SYNC_POLL_S * 1e9);
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        if (!api->stopping) pthread_cond_timedwait(&api->wake, &api->wlock, &until);
    }
    resume_decided(api, di_now()); /* stopping: every wait ends now */
    pthread_mutex_unlock(&api->wlock);
    return NULL;
}

/* ---- Service endpoints ---------------------------------------------------- */

static enum MHD_Result get_ready(Api *api, Req *rq, struct MHD_Connection *c) {
    int64_t counts[JOB_STATE_COUNT];
    QueueDepth depth;
    char msg[512];
    if (meta_count_by_state(api->cfg.meta, counts, msg, sizeof msg) ||
        queue_depth(api->cfg.queue, &depth, msg, sizeof msg)) {
        di_log("warn", "not ready: %s", msg);
        return send_json(rq, c, 503,
                         json_pack("{s:s, s:s}", "status", "unavailable", "detail",
                                   "A backend does not answer"));
    }
    return send_json(rq, c, 200, json_pack("{s:s}", "status", "ready"));
}

static enum MHD_Result get_metrics(Api *api, Req *rq, struct MHD_Connection *c) {
    int64_t counts[JOB_STATE_COUNT];
    QueueDepth depth;
    char msg[512];
    int meta_ok = meta_count_by_state(api->cfg.meta, counts, msg, sizeof msg) == 0;
    int queue_ok = queue_depth(api->cfg.queue, &depth, msg, sizeof msg) == 0;
    size_t cap = 8192, len = 0;
    char *t = malloc(cap);
    if (!t) return send_body(rq, c, 500, NULL, NULL, NULL);
#define EMIT(...) len += (size_t)snprintf(t + len, len < cap ? cap - len : 0, __VA_ARGS__)
    EMIT("# HELP diarist_jobs Jobs by state.\n# TYPE diarist_jobs gauge\n");
    for (int s = 0; meta_ok && s < JOB_STATE_COUNT; s++)
        EMIT("diarist_jobs{state=\"%s\"} %lld\n", job_state_name((JobState)s),
             (long long)counts[s]);
    EMIT("# HELP diarist_queue_messages Queue messages by state.\n"
         "# TYPE diarist_queue_messages gauge\n");
    if (queue_ok)
        EMIT("diarist_queue_messages{state=\"visible\"} %lld\n"
             "diarist_queue_messages{state=\"in_flight\"} %lld\n"
             "diarist_queue_messages{state=\"dead\"} %lld\n",
             (long long)depth.visible, (long long)depth.in_flight, (long long)depth.dead);
    EMIT("# HELP diarist_http_requests_total HTTP answers by status code.\n"
         "# TYPE diarist_http_requests_total counter\n");
    for (int code = 100; code < MAX_STATUS && len < cap; code++) {
        uint64_t n = __atomic_load_n(&api->answers[code], __ATOMIC_RELAXED);
        if (n) EMIT("diarist_http_requests_total{code=\"%d\"} %llu\n", code, (unsigned long long)n);
    }
#undef EMIT
    if (len >= cap) len = cap - 1; /* cannot happen with ~80 codes in use */
    t[len] = 0;
    /* The workers' figures: all of them in `diarist run`, none in an API alone. */
    if (metrics_render(&t, &len, &cap)) {
        free(t);
        return send_body(rq, c, 500, NULL, NULL, NULL);
    }
    return send_body(rq, c, 200, "text/plain; version=0.0.4; charset=utf-8", t, NULL);
}

/* ---- Router --------------------------------------------------------------- */

/* The id after prefix when the rest of url has no further '/', else NULL. */
static const char *id_after(const char *url, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) || !url[n] || strchr(url + n, '/')) return NULL;
    return url + n;
}

static int is_upload_path(const char *url) {
    return !strcmp(url, "/upload-audio/") || !strcmp(url, "/upload-audio");
}

static enum MHD_Result route(Api *api, Req *rq, struct MHD_Connection *c, const char *method,
                             const char *url) {
    if (!strcmp(method, "OPTIONS")) return preflight(rq, c);
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const char *id;
    if (!strcmp(url, "/")) {
        if (!get) return not_allowed(rq, c, "GET");
        return send_json(rq, c, 200,
                         json_pack("{s:s}", "message", "Audio Transcription API is running"));
    }
    if (is_upload_path(url) || is_sync_path(url)) return not_allowed(rq, c, "POST");
    if (!strcmp(url, "/healthz")) {
        if (!get) return not_allowed(rq, c, "GET");
        return send_json(rq, c, 200, json_pack("{s:s}", "status", "ok"));
    }
    if (!strcmp(url, "/readyz")) return get ? get_ready(api, rq, c) : not_allowed(rq, c, "GET");
    if (!strcmp(url, "/metrics")) return get ? get_metrics(api, rq, c) : not_allowed(rq, c, "GET");
    if ((id = id_after(url, "/status/")))
        return get ? get_status(api, rq, c, id) : not_allowed(rq, c, "GET");
    if ((id = id_after(url, "/result/")))
        return get ? get_result(api, rq, c, id) : not_allowed(rq, c, "GET");
    if ((id = id_after(url, "/jobs/")))
        return !strcmp(method, "DELETE") ? delete_job(api, rq, c, id)
                                         : not_allowed(rq, c, "DELETE");
    if (!strncmp(url, "/jobs/", 6)) {
        const char *slash = strchr(url + 6, '/');
        if (slash && !strcmp(slash, "/transcript")) {
            char jid[64];
            size_t n = (size_t)(slash - (url + 6));
            if (!get) return not_allowed(rq, c, "GET");
            if (n >= sizeof jid) return send_detail(rq, c, 404, "Job not found");
            memcpy(jid, url + 6, n);
            jid[n] = 0;
            return get_transcript(api, rq, c, jid);
        }
    }
    return send_detail(rq, c, 404, "Not Found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    Api *api = cls;
    Req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->t0 = di_now();
        snprintf(rq->method, sizeof rq->method, "%s", method);
        snprintf(rq->path, sizeof rq->path, "%s", url);
        *con_cls = rq;
        rq->sync = !strcmp(method, "POST") && is_sync_path(url);
        if (rq->sync || (!strcmp(method, "POST") && is_upload_path(url))) {
            rq->upload = 1;
            rq->up = api_upload_new(&api->cfg, c, rq->sync);
            if (!rq->up) return MHD_NO;
            /* Refused before the body (declared too large): answer now. */
            if (api_upload_refused(rq->up)) {
                char *body;
                unsigned st = api_upload_finish(rq->up, &body);
                return send_upload(rq, c, st, body);
            }
        }
        return MHD_YES;
    }
    if (rq->status) {
        /* Answered already: drop whatever the client still sends. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (rq->upload) api_upload_feed(rq->up, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* A refusal mid-body is answered at once; MHD then closes the
         * connection rather than read the rest. If MHD cannot answer yet,
         * the rest is read and dropped and the answer comes at the end. */
        if (rq->upload && api_upload_refused(rq->up)) {
            char *body;
            unsigned st = api_upload_finish(rq->up, &body);
            send_upload(rq, c, st, body);
        }
        return MHD_YES;
    }
    if (rq->sync) return rq->waiting ? sync_answer(api, rq, c) : sync_start(api, rq, c);
    if (rq->upload) {
        char *body;
        unsigned st = api_upload_finish(rq->up, &body);
        return send_body(rq, c, st, "application/json", body, NULL);
    }
    return route(api, rq, c, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
    (void)c;
    Api *api = cls;
    Req *rq = *con_cls;
    if (!rq) return;
    api_upload_free(rq->up); /* aborts an upload cut short: nothing stays */
    unsigned st = rq->status;
    if (st < MAX_STATUS) __atomic_fetch_add(&api->answers[st], 1, __ATOMIC_RELAXED);
    const char *how = code == MHD_REQUEST_TERMINATED_COMPLETED_OK      ? ""
                      : code == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (timed out)"
                                                                       : " (cut short)";
    di_log(st ? "info" : "warn", "http %s %s %u %.1fms%s", rq->method, rq->path, st,
           (di_now() - rq->t0) * 1000.0, how);
    free(rq);
    *con_cls = NULL;
}

/* ---- Life cycle ----------------------------------------------------------- */

int api_start(const ApiConfig *cfg, Api **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "api_start: no output");
    *out = NULL;
    if (!cfg || !cfg->store || !cfg->meta || !cfg->queue)
        return di_fail(msg, cap, DI_EINVAL, "api_start: the store, meta and queue are required");
    if (cfg->port < 0 || cfg->port > 65535 || cfg->threads < 1 || cfg->threads > 256 ||
        !cfg->max_upload_bytes || !cfg->timeout_s)
        return di_fail(msg, cap, DI_EINVAL,
                       "api_start: port, threads, size limit or timeout out of range");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* Suspend/resume lets a synchronous transcription wait without a thread. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, cfg->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        return di_fail(msg, cap, DI_EINVAL, "API_HOST %s is not an IP address", cfg->host);
    }
    /* Uploads cut short by a crash (kill -9, power) left temp files that no
     * key names; their writers are gone, so nothing half-written stays. */
    int swept = 0;
    char why[256];
    if (store_sweep_temp(cfg->store, API_SWEEP_AGE_S, &swept, why, sizeof why))
        di_log("warn", "sweep of unfinished uploads failed: %s", why);
    else if (swept)
        di_log("info", "removed %d unfinished uploads left by a crash", swept);
    Api *api = calloc(1, sizeof *api);
    if (!api) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    api->cfg = *cfg;
    if (!api->cfg.sync_timeout_s) api->cfg.sync_timeout_s = API_DEFAULT_SYNC_TIMEOUT_S;
    pthread_mutex_init(&api->wlock, NULL);
    pthread_cond_init(&api->wake, NULL);
    api->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, api, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        api->daemon ? MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) {
        api_stop(api);
        return di_fail(msg, cap, DI_EIO, "cannot listen on %s:%d (in use, or not allowed)",
                       cfg->host, cfg->port);
    }
    api->port = info->port;
    if (pthread_create(&api->waiter, NULL, waiter_main, api)) {
        api_stop(api);
        return di_fail(msg, cap, DI_ENOMEM, "cannot start the API's waiter thread");
    }
    api->waiter_started = 1;
    *out = api;
    return 0;
}

int api_port(const Api *api) {
    return api ? api->port : 0;
}

void api_stop(Api *api) {
    if (!api) return;
    /* Waiting requests are resumed first: MHD cannot stop with a suspended
     * connection. Their answers race the shutdown; their jobs stay. */
    pthread_mutex_lock(&api->wlock);
    api->stopping = 1;
    pthread_cond_signal(&api->wake);
    pthread_mutex_unlock(&api->wlock);
    if (api->waiter_started) pthread_join(api->waiter, NULL);
    if (api->daemon) MHD_stop_daemon(api->daemon);
    pthread_cond_destroy(&api->wake);
    pthread_mutex_destroy(&api->wlock);
    free(api);
}
