/* The job as a client reads its result: one builder for GET /result/{id}
 * and for the callback a worker posts when the job ends, so the two can
 * never disagree. */
#include "meta/meta.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The segments array of a stored verbose_json (or the array itself). */
static json_t *segments_of(json_t *doc) {
    if (json_is_array(doc)) return doc;
    return json_object_get(doc, "segments");
}

static void add_completed(json_t *o, const Job *job) {
    json_object_set_new(o, "transcription",
                        json_string(job->transcription ? job->transcription : ""));
    if (job->note_markdown) {
        json_object_set_new(o, "diary_note", json_string(job->note_markdown));
    } else {
        json_object_set_new(o, "message", json_string("Note generation pending"));
        if (job->note_error) json_object_set_new(o, "note_error", json_string(job->note_error));
    }
    if (job->language) json_object_set_new(o, "language", json_string(job->language));
    json_object_set_new(o, "duration", json_real(job->duration));
    json_t *doc = job->segments_json ? json_loads(job->segments_json, 0, NULL) : NULL;
    json_t *segs = segments_of(doc);
    json_object_set_new(o, "segments", segs ? json_incref(segs) : json_array());
    json_decref(doc);
    json_t *note = job->note_json ? json_loads(job->note_json, 0, NULL) : NULL;
    if (note) json_object_set_new(o, "note", note);
}

char *meta_job_result_json(const Job *job) {
    if (!job || !job->job_id) return NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "job_id", json_string(job->job_id));
    json_object_set_new(o, "status", json_string(job_state_name(job->state)));
    if (job->state == JOB_ERROR) {
        /* The seed hid the reason behind "not yet complete"; diarist tells it. */
        json_object_set_new(o, "error", json_string(job->error ? job->error : "unknown error"));
    } else if (job->state != JOB_COMPLETED) {
        json_object_set_new(o, "message", json_string("Processing not yet complete"));
    } else {
        add_completed(o, job);
    }
    char *s = json_dumps(o, 0);
    json_decref(o);
    return s;
}

int meta_callback_url_ok(const char *url) {
    if (!url) return 0;
    size_t n = strlen(url), scheme;
    if (n > META_CALLBACK_URL_MAX) return 0;
    if (!strncmp(url, "http://", 7))
        scheme = 7;
    else if (!strncmp(url, "https://", 8))
        scheme = 8;
    else
        return 0;
    /* A host must follow: "http://" or "http:///x" posts nowhere. */
    if (n == scheme || url[scheme] == '/' || url[scheme] == '?' || url[scheme] == '#') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f) return 0;
    return 1;
}
