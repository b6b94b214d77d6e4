/*
 * meta: the job records. One record per uploaded file, keyed by job_id, with
 * the job's state and results (the seed's AudioTranscriptions table), plus
 * at most one diary note per job (the seed's DiaryNotes table).
 *
 * The API creates records and reads them; workers move them through the
 * life cycle and write transcripts and notes; a metrics endpoint counts
 * them by state. The life cycle (contract.md):
 *   queued -> downloading -> transcribing -> generating_note -> completed
 *   any of them -> error (with the reason in `error`)
 * Every state change is conditional (meta_transition): it happens only if
 * the record is still in one of the states the caller expects, so a stale
 * worker whose lease ran out cannot overwrite what a newer one wrote.
 *
 * One interface, backends behind it (a struct of function pointers plus the
 * backend's own state), chosen by meta_open from a URL:
 *   "sqlite:///abs/path.db"    sqlite.c (tables `jobs` and `notes`)
 *   "dynamodb://JOBS?notes=NOTES"  dynamodb.c (the seed's two tables)
 * Nothing outside a backend knows which one runs. Several processes may
 * open the same database at once (the sqlite backend uses WAL and a busy
 * timeout), and one Meta handle may be used by several threads at once.
 *
 * Ownership: meta_open gives a Meta freed by meta_close (NULL is fine).
 * meta_get fills a caller-owned Job whose strings it allocates; the caller
 * releases them with meta_job_free. Strings passed in are copied.
 */
#ifndef DIARIST_META_H
#define DIARIST_META_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    JOB_QUEUED,
    JOB_DOWNLOADING,
    JOB_TRANSCRIBING,
    JOB_GENERATING_NOTE,
    JOB_COMPLETED,
    JOB_ERROR,
    JOB_STATE_COUNT
} JobState;

/* A set of states for meta_transition, e.g. JOB_MASK(JOB_QUEUED) |
 * JOB_MASK(JOB_ERROR). */
#define JOB_MASK(s) (1u << (s))
#define JOB_MASK_ANY ((1u << JOB_STATE_COUNT) - 1)

/* The contract's names: "queued", ..., "generating_note", "completed",
 * "error". job_state_name never returns NULL ("unknown" if out of range);
 * job_state_parse returns 0 or DI_EINVAL. */
const char *job_state_name(JobState s);
int job_state_parse(const char *name, JobState *out);

/* meta_transition's answer when the record is not in an expected state:
 * not an error code (those are negative), but nothing was written. */
#define META_STALE 1

/* One job record. NULL strings are absent attributes. */
typedef struct {
    char *job_id;           /* the uuid the API handed out */
    char *file_name;        /* the name the client uploaded (sanitised) */
    char *file_path;        /* the blob's store key: uploads/{job_id}/{file_name} */
    JobState state;         /* contract attribute job_status */
    char *transcription;    /* the joined text; may be large */
    char *error;            /* why the job is in JOB_ERROR */
    char *language;         /* ISO 639-1 code the transcript is in */
    double duration;        /* seconds of audio; 0 until transcribed */
    char *segments_json;    /* verbose_json of the transcript */
    char *note_json;        /* the diary entry as JSON */
    char *note_markdown;    /* the diary entry as markdown (the seed's diary_note) */
    double note_created_at; /* Unix seconds the note was stored; 0 if none */
    char *note_error;       /* why no note could be made (the job still completes) */
    double created_at;      /* Unix seconds */
    double updated_at;      /* Unix seconds of the last write */
    int attempts;           /* how many times a worker picked the job up */
    char *callback_url;     /* where to POST when the job ends; NULL for none */
} Job;

/* Frees the strings of a Job filled by meta_get and zeroes it. NULL ok. */
void meta_job_free(Job *job);

/* The job as GET /result/{job_id} answers it and a callback posts it:
 * {"job_id", "status"} plus, when completed, transcription, diary_note (or
 * message "Note generation pending" and note_error), language, duration,
 * segments and note; when in error, its reason in "error"; otherwise
 * message "Processing not yet complete". A new JSON string (caller frees),
 * NULL when out of memory. */
char *meta_job_result_json(const Job *job);

/* The longest callback_url a job may carry. */
#define META_CALLBACK_URL_MAX 2000
/* 1 if url may be a job's callback_url: http:// or https:// with a host,
 * at most META_CALLBACK_URL_MAX bytes, no spaces or control characters. */
int meta_callback_url_ok(const char *url);

typedef struct Meta Meta;

int meta_open(const char *url, Meta **out, char *msg, size_t cap);
void meta_close(Meta *m);

/* Stores a new record from job_id, file_name, file_path, state, callback_url
 * and created_at (0 = now); other fields start empty. DI_EINVAL if a record
 * with that id exists (message "job ... already exists"), or a required
 * field is missing. */
int meta_create(Meta *m, const Job *job, char *msg, size_t cap);

/* Fills *job (caller frees with meta_job_free). DI_ENOTFOUND. */
int meta_get(Meta *m, const char *job_id, Job *job, char *msg, size_t cap);

/* Moves the job to `to` if its current state is in from_mask, setting
 * `error` to error_or_null (NULL clears it) and updated_at to now; a move
 * to JOB_DOWNLOADING counts one more attempt. Returns 0 when done,
 * META_STALE when the record is in another state (nothing written),
 * DI_ENOTFOUND when there is no such job. */
int meta_transition(Meta *m, const char *job_id, unsigned from_mask, JobState to,
                    const char *error_or_null, char *msg, size_t cap);

/* Writes the transcript fields (any string may be NULL). Idempotent: the
 * same call twice leaves the same record. DI_ENOTFOUND. */
int meta_set_transcript(Meta *m, const char *job_id, const char *text, const char *language,
                        double duration, const char *segments_json, char *msg, size_t cap);

/* Stores the job's note (replacing an earlier one: one note per job) and
 * clears note_error. created_at 0 = now. DI_ENOTFOUND if no such job. */
int meta_put_note(Meta *m, const char *job_id, const char *markdown, const char *json,
                  double created_at, char *msg, size_t cap);

/* Records why no note could be made. DI_ENOTFOUND. */
int meta_set_note_error(Meta *m, const char *job_id, const char *error, char *msg, size_t cap);

/* Deletes the record and its note; deleting an absent job succeeds. */
int meta_delete(Meta *m, const char *job_id, char *msg, size_t cap);

/* counts[s] = how many records are in state s. */
int meta_count_by_state(Meta *m, int64_t counts[JOB_STATE_COUNT], char *msg, size_t cap);

/* ---- For backends only ------------------------------------------------ */

/* One backend. Arguments reaching it have been checked by meta.c (ids are
 * non-empty, states in range, masks non-empty). `state` is what open
 * returned; it must tolerate calls from several threads. */
typedef struct {
    const char *name; /* for logs: "sqlite", "dynamodb" */
    int (*accepts)(const char *url);
    int (*open)(const char *url, void **state, char *msg, size_t cap);
    void (*close)(void *state);
    int (*create)(void *state, const Job *job, char *msg, size_t cap);
    int (*get)(void *state, const char *job_id, Job *job, char *msg, size_t cap);
    int (*transition)(void *state, const char *job_id, unsigned from_mask, JobState to,
                      const char *error, double now, char *msg, size_t cap);
    int (*set_transcript)(void *state, const char *job_id, const char *text, const char *language,
                          double duration, const char *segments_json, double now, char *msg,
                          size_t cap);
    int (*put_note)(void *state, const char *job_id, const char *markdown, const char *json,
                    double created_at, double now, char *msg, size_t cap);
    int (*set_note_error)(void *state, const char *job_id, const char *error, double now, char *msg,
                          size_t cap);
    int (*remove)(void *state, const char *job_id, char *msg, size_t cap);
    int (*count_by_state)(void *state, int64_t counts[JOB_STATE_COUNT], char *msg, size_t cap);
} MetaBackend;

/* Wall-clock Unix time in seconds, the clock every timestamp uses. */
double meta_now(void);

#endif
