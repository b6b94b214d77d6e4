/* The worker pipeline: one queue message in, one job moved to its end. */
#include "worker/worker.h"

#include "audio/audio.h"
#include "core/core.h"
#include "metrics/metrics.h"
#include "output/output.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct Worker {
    WorkerConfig cfg;
    WhisperState *state;
    /* The heartbeat of the message in hand. */
    pthread_t beat;
    int beating;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int beat_stop;
    char receipt[512];
    Callbacks *own_callbacks; /* started by worker_create when the config had none */
};

/* What one message's trip through the pipeline knows. */
typedef struct {
    Worker *w;
    const QueueMessage *m;
    char job_id[128];
    char file_path[STORE_KEY_MAX + 1];
    char file_name[STORE_NAME_MAX + 1];
    Job job;
    double stage_t0;  /* when the current stage began */
    double t0;        /* when the trip began */
    char local[4096]; /* the downloaded audio */
    int64_t recorded_at;
    /* The message's optional "options" (POST /v1/audio/transcriptions). */
    char language[16]; /* "" = the worker's own setting */
    char prompt[4200]; /* "" = none */
    float temperature; /* used when has_temperature */
    int has_temperature;
    int no_note; /* "note": false: complete without a diary note */
} Trip;

WorkerConfig worker_default_config(void) {
    return (WorkerConfig){.params = whisper_default_params(),
                          .n_workers = 1,
                          .n_threads = 1,
                          .batch = 1,
                          .visibility_s = 300,
                          .wait_s = QUEUE_MAX_WAIT_S,
                          .stop_check_s = 1,
                          .backoff_base_s = 10,
                          .backoff_max_s = 600,
                          .max_receives = QUEUE_DEFAULT_MAX_RECEIVES,
                          .write_retries = 4,
                          .write_retry_s = 0.05,
                          .callback = callback_default_config()};
}

static int stopping(const Worker *w) {
    return w->cfg.stop && atomic_load(w->cfg.stop);
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- Heartbeat ---------------------------------------------------------- */

/* Extends the lease every third of the visibility timeout until told to
 * stop, so a long transcription keeps its message. */
static void *heartbeat_main(void *arg) {
    Worker *w = arg;
    double period = w->cfg.visibility_s / 3.0;
    pthread_mutex_lock(&w->lock);
    while (!w->beat_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double t = (double)until.tv_sec + until.tv_nsec / 1e9 + period;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
        int rc = pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (w->beat_stop || rc != ETIMEDOUT) continue;
        char msg[256];
        int qrc = queue_change_visibility(w->cfg.queue, w->receipt, w->cfg.visibility_s, NULL, msg,
                                          sizeof msg);
        if (qrc < 0) di_log("warn", "heartbeat failed: %s", msg);
        if (qrc == QUEUE_STALE) di_log("warn", "heartbeat: the lease was lost");
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void heartbeat_start(Worker *w, const char *receipt) {
    snprintf(w->receipt, sizeof w->receipt, "%s", receipt);
    w->beat_stop = 0;
    w->beating = w->cfg.visibility_s > 0 && pthread_create(&w->beat, NULL, heartbeat_main, w) == 0;
    if (!w->beating) di_log("warn", "no heartbeat: the lease may run out on a long file");
}

static void heartbeat_stop(Worker *w) {
    if (!w->beating) return;
    pthread_mutex_lock(&w->lock);
    w->beat_stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->beat, NULL);
    w->beating = 0;
}

/* ---- Ending a message --------------------------------------------------- */

static void log_stage(Trip *t, const char *stage) {
    double now = di_now();
    di_log("info", "job=%s stage=%s seconds=%.3f receive=%d", t->job_id, stage, now - t->stage_t0,
           t->m->receive_count);
    metrics_observe_stage_named(stage, now - t->stage_t0);
    t->stage_t0 = now;
}

static void ack(Trip *t) {
    char msg[256];
    if (queue_delete(t->w->cfg.queue, t->m->receipt, msg, sizeof msg) < 0)
        di_log("warn", "job=%s: cannot delete its message: %s", t->job_id, msg);
}

/* Puts the message back for a later attempt, later each time it fails. */
static void release(Trip *t, const char *reason) {
    const WorkerConfig *c = &t->w->cfg;
    double delay = c->backoff_base_s;
    for (int i = 1; i < t->m->receive_count && delay < c->backoff_max_s; i++)
        delay *= 2;
    if (delay > c->backoff_max_s) delay = c->backoff_max_s;
    if (delay > QUEUE_MAX_VISIBILITY_S) delay = QUEUE_MAX_VISIBILITY_S;
    di_log("warn", "job=%s retry in %.1f s: %s", t->job_id, delay, reason);
    char msg[256];
    /* If even this fails, the lease runs out and the message comes back. */
    if (queue_change_visibility(c->queue, t->m->receipt, delay, reason, msg, sizeof msg) < 0)
        di_log("warn", "job=%s: cannot schedule the retry: %s", t->job_id, msg);
}

/* ---- A job's end --------------------------------------------------------- */

/* Queues the job's final JSON for its callback_url, read back from meta so
 * the receiver gets exactly what GET /result/{id} answers. */
static void post_callback(Worker *w, const char *job_id) {
    Job job = {0};
    char msg[512];
    int rc = meta_get(w->cfg.meta, job_id, &job, msg, sizeof msg);
    char *body = rc == 0 && job.callback_url ? meta_job_result_json(&job) : NULL;
    if (rc == 0 && job.callback_url && !body)
        rc = di_fail(msg, sizeof msg, DI_ENOMEM, "out of memory");
    else if (rc == 0 && job.callback_url)
        rc = callbacks_post(w->cfg.callbacks, job.callback_url, job_id, body, msg, sizeof msg);
    if (rc) {
        metrics_callback(0);
        di_log("warn", "callback job=%s failed: not queued: %s", job_id, msg);
    }
    free(body);
    meta_job_free(&job);
}

/* The job reached completed or error: count it, and call back if asked.
 * trip_s < 0 when no trip of this worker carried it there. */
static void job_ended(Worker *w, const char *job_id, JobState s, const char *callback_url,
                      double trip_s) {
    metrics_job_finished(s == JOB_COMPLETED);
    if (trip_s >= 0) metrics_observe_stage(METRIC_STAGE_TOTAL, trip_s);
    if (callback_url) post_callback(w, job_id);
}

/* Whether a meta write that returned rc should be tried again (after a
 * pause): only errors, never an answer such as "not found" or "stale". */
static int write_again(const Worker *w, int attempt, int rc) {
    if (rc >= 0 || rc == DI_ENOTFOUND || attempt + 1 >= w->cfg.write_retries) return 0;
    double pause = w->cfg.write_retry_s;
    for (int i = 0; i < attempt; i++)
        pause *= 2;
    sleep_s(pause);
    return 1;
}

/* Writes the next state. 0 when written; otherwise the message has been
 * dealt with (released, or deleted when the job moved on without us) and
 * the caller stops. */
static int advance(Trip *t, unsigned from, JobState to, const char *error) {
    Worker *w = t->w;
    char msg[512];
    int rc;
    for (int a = 0;; a++) {
        rc = meta_transition(w->cfg.meta, t->job_id, from, to, error, msg, sizeof msg);
        if (!write_again(w, a, rc)) break;
    }
    if (rc == 0) {
        double now = di_now();
        if (w->cfg.on_stage) w->cfg.on_stage(w->cfg.stage_ud, t->job_id, to, now - t->stage_t0);
        if (to == JOB_COMPLETED || to == JOB_ERROR)
            job_ended(w, t->job_id, to, t->job.callback_url, now - t->t0);
        return 0;
    }
    if (rc == META_STALE || rc == DI_ENOTFOUND) {
        /* Deleted, or finished by another worker whose lease is newer. */
        di_log("info", "job=%s moved on without this worker; dropping the message", t->job_id);
        ack(t);
    } else {
        char why[600];
        snprintf(why, sizeof why, "cannot record state %s: %s", job_state_name(to), msg);
        release(t, why);
    }
    return -1;
}

#define NOT_DONE (JOB_MASK_ANY & ~JOB_MASK(JOB_COMPLETED) & ~JOB_MASK(JOB_ERROR))

/* A failure no retry can fix: the job ends in error and the message goes. */
static void fail_job(Trip *t, const char *reason) {
    di_log("warn", "job=%s failed: %s", t->job_id, reason);
    if (advance(t, NOT_DONE, JOB_ERROR, reason) == 0) ack(t);
}

/* ---- Stages ------------------------------------------------------------- */

/* Reads the optional "options" object. A value of the wrong type or out of
 * range is ignored (the job runs with the worker's settings), so an odd
 * option never costs the recording. */
static void parse_options(Trip *t, json_t *opt) {
    const char *lang = json_string_value(json_object_get(opt, "language"));
    if (lang && strlen(lang) < sizeof t->language)
        snprintf(t->language, sizeof t->language, "%s", lang);
    const char *prompt = json_string_value(json_object_get(opt, "prompt"));
    if (prompt && strlen(prompt) < sizeof t->prompt)
        snprintf(t->prompt, sizeof t->prompt, "%s", prompt);
    json_t *temp = json_object_get(opt, "temperature");
    double v = json_number_value(temp);
    if (json_is_number(temp) && v >= 0 && v <= 1) {
        t->temperature = (float)v;
        t->has_temperature = 1;
    }
    t->no_note = json_is_false(json_object_get(opt, "note"));
}

/* The job's options over the worker's settings. As in OpenAI's API, a
 * temperature of 0 keeps the fallback and one above 0 is used alone. */
static void apply_options(const Trip *t, WhisperParams *p) {
    if (t->language[0]) p->language = t->language;
    if (t->prompt[0]) p->initial_prompt = t->prompt;
    if (t->has_temperature) {
        p->temperature = t->temperature;
        if (t->temperature > 0) p->temperature_increment = 0;
    }
}

static int wants_note(const Trip *t) {
    return t->w->cfg.notes && !t->no_note;
}

/* Parses the seed's body; the reason in why when it is not that. */
static int parse_body(Trip *t, char *why, size_t cap) {
    json_error_t err;
    json_t *doc = json_loadb(t->m->body, t->m->body_len, 0, &err);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return di_fail(why, cap, DI_EFORMAT, "message body is not a JSON object");
    }
    const char *id = json_string_value(json_object_get(doc, "job_id"));
    const char *path = json_string_value(json_object_get(doc, "file_path"));
    const char *name = json_string_value(json_object_get(doc, "file_name"));
    int rc = 0;
    if (!id || !*id || !path || !*path || !name)
        rc = di_fail(why, cap, DI_EFORMAT, "message body lacks job_id, file_path or file_name");
    else if (strlen(id) >= sizeof t->job_id || strlen(path) >= sizeof t->file_path)
        rc = di_fail(why, cap, DI_EFORMAT, "job_id or file_path too long");
    if (!rc) {
        snprintf(t->job_id, sizeof t->job_id, "%s", id);
        snprintf(t->file_path, sizeof t->file_path, "%s", path);
        if (store_sanitize_name(name, t->file_name, sizeof t->file_name) != 0)
            snprintf(t->file_name, sizeof t->file_name, "file");
        parse_options(t, json_object_get(doc, "options"));
    }
    json_decref(doc);
    return rc;
}

/* Copies the blob to a local file named after the job, with the upload's
 * own extension (FFmpeg reads the bytes, but a person reading /tmp should
 * not be misled). 0, or the message is dealt with. */
static int download(Trip *t) {
    Worker *w = t->w;
    const char *dir = w->cfg.tmp_dir ? w->cfg.tmp_dir : getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    const char *dot = strrchr(t->file_name, '.');
    char rnd[40];
    if (queue_random_hex(rnd, sizeof rnd) != 0) snprintf(rnd, sizeof rnd, "%ld", (long)getpid());
    snprintf(t->local, sizeof t->local, "%s/diarist-%s-%.8s%s", dir, t->job_id, rnd,
             dot ? dot : "");
    char msg[512], why[700];
    int rc = store_get_file(w->cfg.store, t->file_path, t->local, msg, sizeof msg);
    if (rc == 0) return 0;
    t->local[0] = 0;
    snprintf(why, sizeof why, "cannot fetch the audio: %s", msg);
    if (rc == DI_ENOTFOUND || rc == DI_EINVAL)
        fail_job(t, why);
    else
        release(t, why);
    return -1;
}

static int permanent_decode_error(int rc) {
    return rc == DI_EFORMAT || rc == DI_ENOAUDIO || rc == DI_EUNSUPPORTED || rc == DI_ERANGE;
}

/* Decodes and transcribes the local file, and saves the transcript. */
static int transcribe(Trip *t, char **text_out, char *lang, size_t lang_cap) {
    Worker *w = t->w;
    char msg[1024], why[1200];
    AudioPcm pcm = {0};
    int rc = audio_decode_file(t->local, &pcm, msg, sizeof msg);
    if (rc) {
        /* The reason is the client's to read: name their file, not our
         * temp copy of it. */
        size_t n = strlen(t->local);
        const char *reason = strncmp(msg, t->local, n) == 0 && msg[n] == ':' ? msg + n + 1 : msg;
        while (*reason == ' ')
            reason++;
        snprintf(why, sizeof why, "cannot read the audio: %s: %s", t->file_name, reason);
        if (permanent_decode_error(rc))
            fail_job(t, why);
        else
            release(t, why);
        return -1;
    }
    t->recorded_at = pcm.creation_time;
    WhisperParams p = w->cfg.params;
    p.progress = NULL;
    p.progress_ud = NULL;
    apply_options(t, &p);
    WhisperResult r = {0};
    double engine_t0 = di_now();
    if (w->cfg.engine)
        rc = engine_transcribe(w->cfg.engine, pcm.samples, pcm.n_samples, &p, &r, msg, sizeof msg);
    else
        rc = whisper_transcribe(w->state, pcm.samples, pcm.n_samples, &p, &r, msg, sizeof msg);
    int engine_rc = rc;
    if (!rc) metrics_add_transcription(r.duration, di_now() - engine_t0);
    audio_pcm_free(&pcm);
    char *verbose = NULL;
    if (!rc)
        rc = output_render(&r, OUT_VERBOSE_JSON, p.translate ? "translate" : "transcribe", &verbose,
                           msg, sizeof msg);
    if (!rc) {
        for (int a = 0;; a++) {
            rc = meta_set_transcript(w->cfg.meta, t->job_id, r.text ? r.text : "", r.language,
                                     r.duration, verbose, msg, sizeof msg);
            if (!write_again(w, a, rc)) break;
        }
    }
    if (engine_rc == DI_EINVAL) {
        /* The engine refused the settings (a language an English-only
         * model lacks): no retry can fix that. */
        snprintf(why, sizeof why, "invalid options: %s", msg);
        fail_job(t, why);
    } else if (rc) {
        snprintf(why, sizeof why, "transcription failed: %s", msg);
        if (rc == DI_ENOTFOUND)
            ack(t); /* the job was deleted while we worked */
        else
            release(t, why);
    } else {
        *text_out = strdup(r.text ? r.text : "");
        snprintf(lang, lang_cap, "%s", r.language);
        di_log("info", "job=%s transcribed %.1f s of audio, %d segments", t->job_id, r.duration,
               r.n_segments);
    }
    free(verbose);
    whisper_result_free(&r);
    return rc ? -1 : 0;
}

/* On a redelivery straight to the note, the recording's date is read
 * again from the audio (no meta field keeps it); unknown if that fails. */
static void reread_recorded_at(Trip *t) {
    t->recorded_at = -1;
    if (download(t) != 0) return;
    AudioPcm pcm = {0};
    char msg[256];
    if (audio_decode_file(t->local, &pcm, msg, sizeof msg) == 0) t->recorded_at = pcm.creation_time;
    audio_pcm_free(&pcm);
}

static int save_note(Trip *t, json_t *entry, char *msg, size_t cap) {
    char *md = notes_render_markdown(entry);
    char *js = json_dumps(entry, JSON_COMPACT);
    int rc = DI_ENOMEM;
    if (!md || !js)
        di_fail(msg, cap, DI_ENOMEM, "cannot render the note");
    else
        for (int a = 0;; a++) {
            rc = meta_put_note(t->w->cfg.meta, t->job_id, md, js, 0, msg, cap);
            if (!write_again(t->w, a, rc)) break;
        }
    free(md);
    free(js);
    return rc;
}

/* Writes the note; a failure is recorded as such and retried later, and on
 * the last receive the job completes without a note. */
static void make_note(Trip *t, const char *text, const char *lang) {
    Worker *w = t->w;
    NoteRequest req = {.transcript = text,
                       .language = lang && *lang ? lang : NULL,
                       .recorded_at = t->recorded_at,
                       .uploaded_at = (int64_t)t->job.created_at,
                       .timezone = w->cfg.timezone};
    char msg[1024], why[1200];
    json_t *entry = NULL;
    int rc = notes_generate(w->cfg.notes, &req, &entry, msg, sizeof msg);
    if (rc == 0) {
        rc = save_note(t, entry, msg, sizeof msg);
        json_decref(entry);
        if (rc == DI_ENOTFOUND) {
            ack(t);
            return;
        }
        if (rc) {
            snprintf(why, sizeof why, "cannot store the note: %s", msg);
            release(t, why);
            return;
        }
        log_stage(t, "generating_note");
        if (advance(t, JOB_MASK(JOB_GENERATING_NOTE), JOB_COMPLETED, NULL) == 0) {
            log_stage(t, "completed");
            ack(t);
        }
        return;
    }
    snprintf(why, sizeof why, "note generation failed: %s", msg);
    int wrc;
    for (int a = 0;; a++) {
        wrc = meta_set_note_error(w->cfg.meta, t->job_id, why, msg, sizeof msg);
        if (!write_again(w, a, wrc)) break;
    }
    if (wrc == DI_ENOTFOUND) {
        ack(t);
        return;
    }
    int last = w->cfg.max_receives > 0 && t->m->receive_count >= w->cfg.max_receives;
    if (wrc == 0 && last) {
        /* The transcript is the job's result; the note failure stays on
         * record beside it. */
        di_log("warn", "job=%s completes without a note: %s", t->job_id, why);
        if (advance(t, JOB_MASK(JOB_GENERATING_NOTE), JOB_COMPLETED, NULL) == 0) {
            log_stage(t, "completed");
            ack(t);
        }
        return;
    }
    release(t, why);
}

/* ---- One message -------------------------------------------------------- */

static void run_trip(Trip *t) {
    Worker *w = t->w;
    char msg[512], why[700];
    if (parse_body(t, why, sizeof why) != 0) {
        di_log("warn", "message %s dead-lettered: %s", t->m->id, why);
        if (queue_dead_letter(w->cfg.queue, t->m->receipt, why, msg, sizeof msg) < 0)
            di_log("warn", "cannot dead-letter message %s: %s", t->m->id, msg);
        return;
    }
    int rc;
    for (int a = 0;; a++) {
        rc = meta_get(w->cfg.meta, t->job_id, &t->job, msg, sizeof msg);
        if (!write_again(w, a, rc)) break;
    }
    if (rc == DI_ENOTFOUND ||
        (rc == 0 && (t->job.state == JOB_COMPLETED || t->job.state == JOB_ERROR))) {
        /* Deleted by its owner, or a redelivery of finished work. */
        di_log("info", "job=%s is %s; message dropped", t->job_id,
               rc ? "gone" : job_state_name(t->job.state));
        /* The last worker may have died before its callback went out:
         * post again (at least once; receivers dedupe on the job id). */
        if (rc == 0 && t->job.callback_url) post_callback(w, t->job_id);
        ack(t);
        return;
    }
    if (rc) {
        snprintf(why, sizeof why, "cannot read the job: %s", msg);
        release(t, why);
        return;
    }

    char *text = NULL, lang[16] = "";
    if (t->job.state == JOB_GENERATING_NOTE && t->job.transcription) {
        /* The transcript survived an earlier attempt: only the note is left. */
        text = strdup(t->job.transcription);
        snprintf(lang, sizeof lang, "%s", t->job.language ? t->job.language : "");
        if (w->cfg.notes) reread_recorded_at(t);
        if (!text) {
            release(t, "out of memory");
            return;
        }
    } else {
        if (advance(t, NOT_DONE, JOB_DOWNLOADING, NULL) != 0) return;
        if (download(t) != 0) return;
        log_stage(t, "downloading");
        if (advance(t, JOB_MASK(JOB_DOWNLOADING), JOB_TRANSCRIBING, NULL) != 0) return;
        if (transcribe(t, &text, lang, sizeof lang) != 0) return;
        log_stage(t, "transcribing");
        if (!text) {
            release(t, "out of memory");
            return;
        }
        JobState next = wants_note(t) ? JOB_GENERATING_NOTE : JOB_COMPLETED;
        if (advance(t, JOB_MASK(JOB_TRANSCRIBING), next, NULL) != 0) {
            free(text);
            return;
        }
    }
    if (wants_note(t)) {
        make_note(t, text, lang);
    } else if (t->job.state == JOB_GENERATING_NOTE) {
        /* Redelivered for a note, but this worker makes none. */
        if (advance(t, JOB_MASK(JOB_GENERATING_NOTE), JOB_COMPLETED, NULL) == 0) ack(t);
    } else {
        log_stage(t, "completed");
        ack(t);
    }
    free(text);
}

void worker_process(Worker *w, const QueueMessage *m) {
    if (!w || !m || !m->receipt) return;
    Trip t = {.w = w, .m = m, .stage_t0 = di_now(), .recorded_at = -1};
    t.t0 = t.stage_t0;
    snprintf(t.job_id, sizeof t.job_id, "?");
    heartbeat_start(w, m->receipt);
    run_trip(&t);
    heartbeat_stop(w);
    if (t.local[0]) remove(t.local);
    meta_job_free(&t.job);
}

/* ---- Dead letters ------------------------------------------------------- */

/* The queue gave up on a message: the job ends with the last reason. A job
 * that only lacks its note still completes (the note failure is kept). */
static void on_dead(void *ctx, const QueueMessage *dead) {
    Worker *w = ctx;
    json_t *doc = json_loadb(dead->body, dead->body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "job_id"));
    char msg[512];
    Job job = {0};
    if (id && *id && meta_get(w->cfg.meta, id, &job, msg, sizeof msg) == 0 &&
        job.state != JOB_COMPLETED && job.state != JOB_ERROR) {
        char why[1024];
        snprintf(why, sizeof why, "gave up after %d attempts: %s", dead->receive_count,
                 dead->last_error ? dead->last_error : "no reason recorded");
        int rc;
        if (job.state == JOB_GENERATING_NOTE && job.transcription) {
            if (!job.note_error) meta_set_note_error(w->cfg.meta, id, why, msg, sizeof msg);
            rc = meta_transition(w->cfg.meta, id, JOB_MASK(JOB_GENERATING_NOTE), JOB_COMPLETED,
                                 NULL, msg, sizeof msg);
        } else {
            rc = meta_transition(w->cfg.meta, id, NOT_DONE, JOB_ERROR, why, msg, sizeof msg);
        }
        di_log("warn", "job=%s dead-lettered: %s%s%s", id, why, rc < 0 ? "; not recorded: " : "",
               rc < 0 ? msg : "");
        JobState end =
            job.state == JOB_GENERATING_NOTE && job.transcription ? JOB_COMPLETED : JOB_ERROR;
        if (rc == 0 && w->cfg.on_stage) w->cfg.on_stage(w->cfg.stage_ud, id, end, 0);
        if (rc == 0) job_ended(w, id, end, job.callback_url, -1);
    }
    meta_job_free(&job);
    json_decref(doc);
}

/* ---- Workers ------------------------------------------------------------ */

int worker_create(const WorkerConfig *cfg, Worker **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "worker_create: no output pointer");
    *out = NULL;
    if (!cfg || !cfg->store || !cfg->meta || !cfg->queue || !cfg->model)
        return di_fail(msg, cap, DI_EINVAL, "worker: store, meta, queue and model are required");
    if (!(cfg->visibility_s > 0 && cfg->visibility_s <= QUEUE_MAX_VISIBILITY_S) ||
        !(cfg->wait_s >= 0 && cfg->wait_s <= QUEUE_MAX_WAIT_S) || cfg->n_threads < 1)
        return di_fail(msg, cap, DI_EINVAL, "worker: visibility, wait or threads out of range");
    Worker *w = calloc(1, sizeof *w);
    if (!w) return di_fail(msg, cap, DI_ENOMEM, "worker: out of memory");
    w->cfg = *cfg;
    if (w->cfg.write_retries < 1) w->cfg.write_retries = 1;
    if (!(w->cfg.stop_check_s > 0)) w->cfg.stop_check_s = 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    int rc = 0;
    if (!w->cfg.callbacks) {
        rc = callbacks_start(&cfg->callback, &w->own_callbacks, msg, cap);
        w->cfg.callbacks = w->own_callbacks;
    }
    if (!rc && !cfg->engine)
        rc = whisper_state_create(cfg->model, cfg->n_threads, &w->state, msg, cap);
    if (rc) {
        worker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void worker_free(Worker *w) {
    if (!w) return;
    whisper_state_free(w->state);
    callbacks_stop(w->own_callbacks);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int worker_poll_once(Worker *w, char *msg, size_t cap) {
    if (!w) return di_fail(msg, cap, DI_EINVAL, "worker_poll_once: no worker");
    /* Long-poll in short slices so a stop request is seen within one. */
    double waited = 0;
    for (;;) {
        double slice = w->cfg.wait_s - waited;
        if (slice > w->cfg.stop_check_s) slice = w->cfg.stop_check_s;
        if (slice < 0) slice = 0;
        QueueMessage m = {0};
        int rc = queue_receive(w->cfg.queue, slice, w->cfg.visibility_s, on_dead, w, &m, msg, cap);
        if (rc < 0) return rc;
        if (rc == 1) {
            worker_process(w, &m);
            queue_message_free(&m);
            return 1;
        }
        waited += slice;
        if (waited >= w->cfg.wait_s || stopping(w)) return 0;
    }
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    char msg[512];
    double pause = 0.5;
    while (!stopping(w)) {
        int rc = worker_poll_once(w, msg, sizeof msg);
        if (rc >= 0) {
            pause = 0.5;
            continue;
        }
        /* The queue itself is failing: wait a little longer each time. */
        di_log("error", "queue receive failed: %s", msg);
        for (double s = 0; s < pause && !stopping(w); s += 0.1)
            sleep_s(0.1);
        if (pause < 30) pause *= 2;
    }
    return NULL;
}

int worker_run(const WorkerConfig *cfg, char *msg, size_t cap) {
    if (!cfg || cfg->n_workers < 1 || cfg->n_workers > 1024)
        return di_fail(msg, cap, DI_EINVAL, "worker_run: n_workers must be 1..1024");
    if (cfg->batch < 1 || cfg->batch > WHISPER_BATCH_MAX_LANES)
        return di_fail(msg, cap, DI_EINVAL, "worker_run: batch must be 1..%d",
                       WHISPER_BATCH_MAX_LANES);
    /* A shared engine fills its lanes from as many jobs in hand. */
    int n = cfg->n_workers;
    if (cfg->batch > 1 && !cfg->engine && n < cfg->batch) n = cfg->batch;
    Worker **ws = calloc((size_t)n, sizeof *ws);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    int *started = calloc((size_t)n, sizeof *started);
    if (!ws || !th || !started) {
        free(ws);
        free(th);
        free(started);
        return di_fail(msg, cap, DI_ENOMEM, "worker_run: out of memory");
    }
    /* One delivery queue for the set, so idle receivers cost n threads, not
     * n per worker; it drains after the workers stop making callbacks. */
    WorkerConfig set = *cfg;
    Callbacks *own = NULL;
    int rc = set.callbacks ? 0 : callbacks_start(&cfg->callback, &own, msg, cap);
    if (own) set.callbacks = own;
    Engine *engine = NULL;
    if (!rc && cfg->batch > 1 && !cfg->engine) {
        rc = engine_start(cfg->model, cfg->n_threads, cfg->batch, &engine, msg, cap);
        set.engine = engine;
    }
    int running = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = worker_create(&set, &ws[i], msg, cap);
        if (rc == 0) {
            started[i] = pthread_create(&th[i], NULL, worker_main, ws[i]) == 0;
            running += started[i];
        }
    }
    if (rc && running) {
        di_log("warn", "started %d of %d workers: %s", running, n, msg);
        rc = 0;
    }
    if (running)
        di_log("info", "%d workers running, %s", running,
               engine ? "sharing one batched engine" : "each with its own engine state");
    for (int i = 0; i < n; i++)
        if (started[i]) pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++)
        worker_free(ws[i]);
    engine_stop(engine);
    callbacks_stop(own);
    free(ws);
    free(th);
    free(started);
    if (!running && !rc) rc = di_fail(msg, cap, DI_EINTERNAL, "worker_run: no worker started");
    return rc;
}
