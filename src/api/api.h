/*
 * api: the HTTP service a client talks to, with the seed's endpoints and
 * exact JSON (see ../shared/seed/contract.md), plus diarist's own.
 *
 * The API process holds no model: it streams uploads into the blob store,
 * records jobs in meta and enqueues one message per job for the workers.
 *
 *   GET    /                          {"message": "Audio Transcription API is running"}
 *   POST   /upload-audio/             multipart field `file` (+ optional `callback_url`)
 *   POST   /v1/audio/transcriptions   OpenAI's synchronous transcription API (below)
 *   GET    /status/{job_id}           {"job_id", "status", "file_name"}
 *   GET    /result/{job_id}           the seed's shapes, plus language, duration,
 *                                     segments, note; an `error` job carries its reason
 *   GET    /jobs/{job_id}/transcript  ?format=txt|json|verbose_json|srt|vtt
 *   DELETE /jobs/{job_id}             removes the record, its note and its audio
 *   GET    /healthz, /readyz, /metrics
 *
 * Every answer carries Access-Control-Allow-Origin: * and an OPTIONS
 * preflight is answered 200, as the seed's open CORS does. Errors are
 * {"detail": "..."}: 404 for unknown paths and unknown or malformed job ids
 * (an id that is not a uuid is never looked up), 405 for a wrong method,
 * 422 for a missing `file` field (FastAPI's shape), 400 for an empty file,
 * 413 over the size limit, 415 for bytes that are plainly not audio, 500
 * with a readable reason when a backend fails.
 *
 * POST /v1/audio/transcriptions takes OpenAI's multipart fields: `file`,
 * `model` (accepted and ignored: the workers' own model always runs, so
 * "whisper-1" is fine), `language` (a Whisper ISO-639-1 code; none or
 * "auto" detects), `prompt` (the initial prompt), `response_format` (json,
 * the default, {"text"}; text; srt; vtt; verbose_json with task, language,
 * duration, text and segments) and `temperature` (0 to 1; as in OpenAI's
 * API, 0 keeps the server's temperature fallback, above 0 decodes at that
 * one fixed temperature). Bad fields are a 400 before anything is stored;
 * the file gets the same 413/415/422/400 refusals as /upload-audio/. The
 * API still holds no model: the job is stored and queued like an upload
 * (the message adds "options": {language, prompt, temperature, "note":
 * false}: no diary note is made) and the request waits without holding a
 * request thread (the connection is suspended; one waiter thread polls
 * meta for every waiting job) until the job completes or fails, at most
 * cfg.sync_timeout_s (DIARIST_SYNC_TIMEOUT_S, 600). Once the answer is
 * sent, completed or failed, the job, its audio and its transcript are
 * deleted: it is someone's diary, and the client has no job id to delete
 * it with. A job that fails because its file is not decodable audio, or
 * its options do not fit the model (a language an English-only model
 * lacks) is a 400, any other failure a 500. A wait over the limit is a 504
 * whose detail names the job id: the job stays, and /status, /result and
 * DELETE /jobs/{id} work on it as on any upload; so does a 503 when the
 * API stops while a request waits. Every error of this endpoint carries
 * OpenAI's {"error": {"message", "type", "param", "code"}} beside the
 * project's "detail".
 *
 * Uploads are streamed: each part is written to a StoreWriter as it arrives,
 * never held whole. A failed, refused or abandoned upload (a client that
 * stops sending until the connection timeout) leaves no blob and no record.
 *
 * Ownership: api_start gives an Api freed by api_stop (NULL is fine). The
 * backends in ApiConfig are borrowed and must outlive the Api.
 */
#ifndef DIARIST_API_H
#define DIARIST_API_H

#include <stddef.h>
#include <stdint.h>

#include "meta/meta.h"
#include "queue/queue.h"
#include "store/store.h"

#define API_DEFAULT_PORT 8000
#define API_DEFAULT_MAX_UPLOAD_MB 2048
#define API_DEFAULT_THREADS 4
#define API_DEFAULT_TIMEOUT_S 60
#define API_DEFAULT_SYNC_TIMEOUT_S 600

typedef struct {
    Store *store;
    Meta *meta;
    Queue *queue;
    char host[256];            /* address to bind; "0.0.0.0" by default */
    int port;                  /* 0 = an ephemeral port (read it with api_port) */
    uint64_t max_upload_bytes; /* largest accepted file */
    int threads;               /* request threads */
    unsigned timeout_s;        /* a connection idle this long is closed */
    unsigned sync_timeout_s;   /* longest /v1/audio/transcriptions waits for its job */
} ApiConfig;

/* The defaults above, no backends. */
void api_config_defaults(ApiConfig *cfg);

/* Reads API_HOST, API_PORT, DIARIST_MAX_UPLOAD_MB, DIARIST_API_THREADS,
 * DIARIST_API_TIMEOUT_S and DIARIST_SYNC_TIMEOUT_S over what cfg holds.
 * DI_EINVAL (with the variable named) for a value out of range. */
int api_config_from_env(ApiConfig *cfg, char *msg, size_t cap);

typedef struct Api Api;

/* Binds and starts serving on background threads. DI_EINVAL for a bad
 * config, DI_EIO when the address cannot be bound. */
int api_start(const ApiConfig *cfg, Api **out, char *msg, size_t cap);
/* The bound port (the real one when cfg.port was 0). */
int api_port(const Api *api);
/* Stops serving (in-flight uploads are aborted; requests waiting for a
 * synchronous job are resumed and closed, their jobs left queued) and
 * frees the Api. */
void api_stop(Api *api);

/* 1 if s has the shape of a uuid (8-4-4-4-12 hex digits), else 0. */
int api_valid_job_id(const char *s);

/* ---- For api.c and upload.c only --------------------------------------- */

struct MHD_Connection;
typedef struct ApiUpload ApiUpload;

/* Starts receiving one POST /upload-audio/ on conn, or with sync set one
 * POST /v1/audio/transcriptions (its text fields collected and checked).
 * NULL when out of memory. */
ApiUpload *api_upload_new(const ApiConfig *cfg, struct MHD_Connection *conn, int sync);
/* Takes the next piece of the request body. */
void api_upload_feed(ApiUpload *u, const char *data, size_t n);
/* The status of an answer already decided (a refusal: 413, 415, ...),
 * else 0; the caller may answer at once instead of reading on. */
unsigned api_upload_refused(const ApiUpload *u);
/* Ends the upload (the body is complete): commits, records and enqueues, or
 * undoes what was done. Returns the HTTP status and sets *body to the JSON
 * answer (caller frees). */
unsigned api_upload_finish(ApiUpload *u, char **body);
/* The job id the upload created (valid until api_upload_free). */
const char *api_upload_job_id(const ApiUpload *u);
/* The checked response_format of a sync upload: "json" when not given. */
const char *api_upload_format(const ApiUpload *u);
/* Frees it; an upload never finished is aborted and leaves nothing behind. */
void api_upload_free(ApiUpload *u);

/* {"detail": text} as a new string (NULL when out of memory). */
char *api_detail_json(const char *text);

#endif
