/* meta: the registry that picks a backend from a URL, the state names, and
 * the argument checks every call passes through. */
#include "meta/meta.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const MetaBackend meta_sqlite_backend, meta_dynamodb_backend;

/* Tried in order; the first that accepts the URL wins. */
static const MetaBackend *const backends[] = {&meta_sqlite_backend, &meta_dynamodb_backend};

struct Meta {
    const MetaBackend *be;
    void *state;
};

static const char *const state_names[JOB_STATE_COUNT] = {
    "queued", "downloading", "transcribing", "generating_note", "completed", "error",
};

const char *job_state_name(JobState s) {
    return (unsigned)s < JOB_STATE_COUNT ? state_names[s] : "unknown";
}

int job_state_parse(const char *name, JobState *out) {
    for (int i = 0; name && i < JOB_STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0) {
            if (out) *out = (JobState)i;
            return 0;
        }
    return DI_EINVAL;
}

double meta_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

void meta_job_free(Job *job) {
    if (!job) return;
    free(job->job_id);
    free(job->file_name);
    free(job->file_path);
    free(job->transcription);
    free(job->error);
    free(job->language);
    free(job->segments_json);
    free(job->note_json);
    free(job->note_markdown);
    free(job->note_error);
    free(job->callback_url);
    memset(job, 0, sizeof *job);
}

int meta_open(const char *url, Meta **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "meta_open: no output");
    *out = NULL;
    if (!url || !url[0]) return di_fail(msg, cap, DI_EINVAL, "meta: empty URL");
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const MetaBackend *be = backends[i];
        if (!be->accepts(url)) continue;
        Meta *m = calloc(1, sizeof *m);
        if (!m) return di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
        int rc = be->open(url, &m->state, msg, cap);
        if (rc < 0) {
            free(m);
            return rc;
        }
        m->be = be;
        *out = m;
        return 0;
    }
    return di_fail(msg, cap, DI_EINVAL, "meta: no backend for URL '%.200s'", url);
}

void meta_close(Meta *m) {
    if (!m) return;
    m->be->close(m->state);
    free(m);
}

/* Job ids are uuids in practice; anything printable and short is allowed
 * so the backends never see control bytes or unbounded keys. */
static int check_id(const char *id, char *msg, size_t cap) {
    if (!id || !id[0]) return di_fail(msg, cap, DI_EINVAL, "meta: empty job id");
    size_t n = 0;
    for (; id[n]; n++)
        if ((unsigned char)id[n] < 0x20 || id[n] == 0x7f || n >= 128)
            return di_fail(msg, cap, DI_EINVAL, "meta: bad job id");
    return 0;
}

int meta_create(Meta *m, const Job *job, char *msg, size_t cap) {
    if (!m || !job) return di_fail(msg, cap, DI_EINVAL, "meta_create: bad arguments");
    int rc = check_id(job->job_id, msg, cap);
    if (rc < 0) return rc;
    if (!job->file_name || !job->file_path)
        return di_fail(msg, cap, DI_EINVAL, "meta_create: file_name and file_path are required");
    if ((unsigned)job->state >= JOB_STATE_COUNT)
        return di_fail(msg, cap, DI_EINVAL, "meta_create: bad state");
    Job copy = *job;
    if (!(copy.created_at > 0)) copy.created_at = meta_now();
    return m->be->create(m->state, &copy, msg, cap);
}

int meta_get(Meta *m, const char *job_id, Job *job, char *msg, size_t cap) {
    if (!m || !job) return di_fail(msg, cap, DI_EINVAL, "meta_get: bad arguments");
    memset(job, 0, sizeof *job);
    int rc = check_id(job_id, msg, cap);
    if (rc < 0) return rc;
    return m->be->get(m->state, job_id, job, msg, cap);
}

int meta_transition(Meta *m, const char *job_id, unsigned from_mask, JobState to,
                    const char *error_or_null, char *msg, size_t cap) {
    if (!m) return di_fail(msg, cap, DI_EINVAL, "meta_transition: no handle");
    int rc = check_id(job_id, msg, cap);
    if (rc < 0) return rc;
    if ((unsigned)to >= JOB_STATE_COUNT || (from_mask & JOB_MASK_ANY) == 0 ||
        (from_mask & ~(unsigned)JOB_MASK_ANY))
        return di_fail(msg, cap, DI_EINVAL, "meta_transition: bad state or mask");
    return m->be->transition(m->state, job_id, from_mask, to, error_or_null, meta_now(), msg, cap);
}

int meta_set_transcript(Meta *m, const char *job_id, const char *text, const char *language,
                        double duration, const char *segments_json, char *msg, size_t cap) {
    if (!m || !(duration >= 0))
        return di_fail(msg, cap, DI_EINVAL, "meta_set_transcript: bad arguments");
    int rc = check_id(job_id, msg, cap);
    if (rc < 0) return rc;
    return m->be->set_transcript(m->state, job_id, text, language, duration, segments_json,
                                 meta_now(), msg, cap);
}

int meta_put_note(Meta *m, const char *job_id, const char *markdown, const char *json,
                  double created_at, char *msg, size_t cap) {
    if (!m || !markdown || !(created_at >= 0))
        return di_fail(msg, cap, DI_EINVAL, "meta_put_note: bad arguments");
    int rc = check_id(job_id, msg, cap);
    if (rc < 0) return rc;
    double now = meta_now();
    return m->be->put_note(m->state, job_id, markdown, json, created_at > 0 ? created_at : now, now,
                           msg, cap);
}

int meta_set_note_error(Meta *m, const char *job_id, const char *error, char *msg, size_t cap) {
    if (!m || !error) return di_fail(msg, cap, DI_EINVAL, "meta_set_note_error: bad arguments");
    int rc = check_id(job_id, msg, cap);
    if (rc < 0) return rc;
    return m->be->set_note_error(m->state, job_id, error, meta_now(), msg, cap);
}

int meta_delete(Meta *m, const char *job_id, char *msg, size_t cap) {
    if (!m) return di_fail(msg, cap, DI_EINVAL, "meta_delete: no handle");
    int rc = check_id(job_id, msg, cap);
    if (rc < 0) return rc;
    return m->be->remove(m->state, job_id, msg, cap);
}

int meta_count_by_state(Meta *m, int64_t counts[JOB_STATE_COUNT], char *msg, size_t cap) {
    if (!m || !counts) return di_fail(msg, cap, DI_EINVAL, "meta_count_by_state: bad arguments");
    memset(counts, 0, sizeof(int64_t) * JOB_STATE_COUNT);
    return m->be->count_by_state(m->state, counts, msg, cap);
}
