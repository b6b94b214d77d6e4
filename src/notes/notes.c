/*
 * notes: configuration, choosing a generator, and the checks every
 * generator's entry goes through before anyone sees it.
 */
#include "core/core.h"
#include "notes/notes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BASE_URL "https://api.openai.com/v1"

/* getenv, with an empty value counting as unset. */
static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* A positive number from the environment, or `fallback` (with a warning)
 * when the value is not one. */
static double env_positive(const char *name, double fallback) {
    const char *v = env(name);
    if (!v) return fallback;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x > 0) || x > 1e9) {
        di_log("warn", "ignoring %s=%s: not a positive number", name, v);
        return fallback;
    }
    return x;
}

NoteConfig notes_config_from_env(void) {
    NoteConfig c = {
        .generator = "auto",
        .api_key = NULL,
        .base_url = DEFAULT_BASE_URL,
        .model = "gpt-4o-mini",
        .temperature = 0.2f,
        .max_tokens = 1500,
        .chunk_tokens = 3000,
        .request_timeout_s = 120,
        .deadline_s = 600,
        .max_attempts = 6,
        .backoff_base_s = 1.0,
        .backoff_max_s = 30,
    };
    if (env("DIARIST_NOTE_GENERATOR")) c.generator = env("DIARIST_NOTE_GENERATOR");
    if (env("OPENAI_API_KEY")) c.api_key = env("OPENAI_API_KEY");
    if (env("OPENAI_BASE_URL")) c.base_url = env("OPENAI_BASE_URL");
    if (env("DIARIST_NOTE_MODEL")) c.model = env("DIARIST_NOTE_MODEL");
    c.chunk_tokens = (int)env_positive("DIARIST_NOTE_CHUNK_TOKENS", c.chunk_tokens);
    c.request_timeout_s = env_positive("DIARIST_NOTE_TIMEOUT", c.request_timeout_s);
    /* Not in the documented list, but the whole-note deadline needs a knob
     * as much as the per-request timeout (tests use a short one). */
    c.deadline_s = env_positive("DIARIST_NOTE_DEADLINE", c.deadline_s);
    return c;
}

/* Whether base_url names a server other than OpenAI's own. */
static int custom_server(const char *base_url) {
    if (!base_url || !*base_url) return 0;
    size_t n = strlen(base_url), d = strlen(DEFAULT_BASE_URL);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    return !(n == d && !strncmp(base_url, DEFAULT_BASE_URL, d));
}

int notes_generator_create(const NoteConfig *cfg, NoteGenerator **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "notes_generator_create: no output pointer");
    *out = NULL;
    if (!cfg) return di_fail(msg, cap, DI_EINVAL, "notes_generator_create: no configuration");
    const char *name = cfg->generator && *cfg->generator ? cfg->generator : "auto";
    /* A self-hosted server (Ollama, llama.cpp) needs no key, so a custom
     * base URL alone is reason enough to use it. */
    if (!strcmp(name, "auto"))
        name = (cfg->api_key && *cfg->api_key) || custom_server(cfg->base_url) ? "openai"
                                                                               : "extractive";
    if (!strcmp(name, "openai")) return notes_openai_create(cfg, out, msg, cap);
    if (!strcmp(name, "extractive")) return notes_extractive_create(cfg, out, msg, cap);
    return di_fail(msg, cap, DI_EINVAL,
                   "unknown note generator \"%s\" (want auto, openai or extractive)", name);
}

void notes_generator_free(NoteGenerator *g) {
    if (g && g->destroy) g->destroy(g);
}

int notes_generate(NoteGenerator *g, const NoteRequest *req, json_t **entry, char *msg,
                   size_t cap) {
    if (!entry) return di_fail(msg, cap, DI_EINVAL, "notes_generate: no output pointer");
    *entry = NULL;
    if (!g || !g->generate) return di_fail(msg, cap, DI_EINVAL, "notes_generate: no generator");
    if (!req || !req->transcript)
        return di_fail(msg, cap, DI_EINVAL, "notes_generate: no transcript");

    json_t *e = NULL;
    int rc = g->generate(g, req, &e, msg, cap);
    if (rc) {
        json_decref(e);
        return rc < 0 ? rc : di_fail(msg, cap, DI_EINTERNAL, "generator returned %d", rc);
    }
    if (!json_is_object(e)) {
        json_decref(e);
        return di_fail(msg, cap, DI_EFORMAT, "the %s generator returned no entry",
                       g->name ? g->name : "note");
    }

    /* The model is told the date but never trusted with it: the entry is
     * the recording's day, whatever came back. */
    char date[16];
    notes_request_date(req, date, sizeof date);
    json_object_set_new(e, "date", json_string(date));
    if (req->language && *req->language)
        json_object_set_new(e, "language", json_string(req->language));
    json_object_set_new(e, "generator", json_string(g->name ? g->name : ""));

    char why[512];
    if (notes_validate(e, why, sizeof why)) {
        json_decref(e);
        return di_fail(msg, cap, DI_EFORMAT, "the %s generator wrote an invalid entry: %s",
                       g->name ? g->name : "note", why);
    }
    *entry = e;
    return 0;
}
