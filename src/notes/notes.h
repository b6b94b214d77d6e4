/*
 * notes: turns a transcript into a structured personal diary entry.
 *
 * One interface, two generators behind it (a struct of function pointers,
 * like redis's rio):
 * - "openai": any OpenAI-compatible chat-completions server (OpenAI,
 *   Ollama, llama.cpp's server, vLLM) over libcurl, asking for strict
 *   structured output and validating what comes back (openai.c);
 * - "extractive": deterministic, offline, no network; fills the same schema
 *   from the transcript alone (extractive.c).
 * Both produce the same JSON entry (entry.c holds its schema, the validator
 * and the markdown rendering). The worker and the CLI use this part; it
 * knows nothing of audio, storage or queues.
 *
 * Ownership: a NoteGenerator is created by notes_generator_create and freed
 * by notes_generator_free (NULL is fine). Entries are jansson objects owned
 * by the caller (json_decref). Strings returned by notes_render_markdown
 * are the caller's to free().
 *
 * The entry (every key always present):
 *   date          "YYYY-MM-DD", the recording's day (never the model's guess)
 *   title         short title
 *   mood          {label: string, intensity: integer 1..10, valence: number -1..1}
 *   summary       a few sentences, first person
 *   key_events    [string]
 *   reflections   string
 *   people        [string]
 *   places        [string]
 *   action_items  [{task: string, due: "YYYY-MM-DD" or null}]
 *   tags          [string]
 *   language      ISO 639-1 code of the transcript
 *   generator     "extractive" or the chat model's name (set by diarist)
 */
#ifndef DIARIST_NOTES_H
#define DIARIST_NOTES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* What to write about. */
typedef struct {
    const char *transcript; /* UTF-8 text; may be empty */
    const char *language;   /* "en", ...; NULL = unknown */
    int64_t recorded_at;    /* Unix seconds from the audio's metadata, -1 if unknown */
    int64_t uploaded_at;    /* Unix seconds; used when recorded_at is -1 */
    const char *timezone;   /* IANA name for the entry's date, NULL = UTC */
} NoteRequest;

typedef struct {
    const char *generator;    /* "auto" (openai when an API key is set), "openai", "extractive" */
    const char *api_key;      /* OPENAI_API_KEY; may be NULL for servers without auth */
    const char *base_url;     /* OPENAI_BASE_URL; default "https://api.openai.com/v1" */
    const char *model;        /* DIARIST_NOTE_MODEL; default "gpt-4o-mini" */
    float temperature;        /* 0.2 */
    int max_tokens;           /* bound on each completion, 1500 */
    int chunk_tokens;         /* map-reduce: transcript tokens per chunk, 3000 */
    double request_timeout_s; /* per HTTP request, 120 */
    double deadline_s;        /* all attempts of one note together, 600 */
    int max_attempts;         /* per request, 6 */
    double backoff_base_s;    /* first retry delay before jitter, 1.0 */
    double backoff_max_s;     /* cap on one delay, 30 */
} NoteConfig;

/* Defaults above, overridden by OPENAI_API_KEY, OPENAI_BASE_URL,
 * DIARIST_NOTE_MODEL, DIARIST_NOTE_GENERATOR, DIARIST_NOTE_CHUNK_TOKENS,
 * DIARIST_NOTE_TIMEOUT. The strings point into the environment. */
NoteConfig notes_config_from_env(void);

typedef struct NoteGenerator NoteGenerator;
struct NoteGenerator {
    /* "extractive" or the chat model's name; also written into entries. */
    const char *name;
    /* Fills *entry (a new, valid entry) or returns a negative DI_E* code
     * with a message; never returns an error text as if it were a note. */
    int (*generate)(NoteGenerator *g, const NoteRequest *req, json_t **entry, char *msg,
                    size_t cap);
    void (*destroy)(NoteGenerator *g);
    void *ctx; /* the backend's own state */
};

int notes_generator_create(const NoteConfig *cfg, NoteGenerator **out, char *msg, size_t cap);
void notes_generator_free(NoteGenerator *g);
/* g->generate, plus the checks every backend shares: the request is valid,
 * the entry passes notes_validate, its date is the recording's, and
 * "generator" names g. */
int notes_generate(NoteGenerator *g, const NoteRequest *req, json_t **entry, char *msg, size_t cap);

/* Backends (called through notes_generator_create). */
int notes_openai_create(const NoteConfig *cfg, NoteGenerator **out, char *msg, size_t cap);
int notes_extractive_create(const NoteConfig *cfg, NoteGenerator **out, char *msg, size_t cap);

/* ---- The entry (entry.c) ------------------------------------------------ */

/* The JSON Schema of an entry as the model is asked to produce it (every
 * key but "generator"), in the strict subset OpenAI's structured outputs
 * accept: all keys required, additionalProperties false. New reference. */
json_t *notes_schema(void);
/* Validates a value against a schema of that subset (type, properties,
 * required, additionalProperties, items, enum, minimum, maximum, and type
 * lists such as ["string","null"]). 0 or DI_EFORMAT with the first
 * violation's path in msg, e.g. "mood.intensity: 14 is above 10". */
int notes_validate_schema(const json_t *value, const json_t *schema, char *msg, size_t cap);
/* notes_validate_schema against notes_schema(), plus "generator". */
int notes_validate(const json_t *entry, char *msg, size_t cap);
/* An entry with every key present and empty values, dated `date`. */
json_t *notes_empty_entry(const char *date, const char *language, const char *generator);
/* The seed's readable note: "# Title", then Date, Mood, Key Events,
 * Reflections, then Summary, People, Places, Action Items, Tags. */
char *notes_render_markdown(const json_t *entry);
/* "YYYY-MM-DD" of the request's day (recorded_at, else uploaded_at) in its
 * timezone; buf needs 11 bytes. */
void notes_request_date(const NoteRequest *req, char *buf, size_t cap);

#endif
