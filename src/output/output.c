/*
 * output: a WhisperResult as text, json, verbose_json, srt or vtt, shaped
 * like the responses of OpenAI's transcription API. See output.h for the
 * conventions every format follows.
 */
#include "output/output.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Languages ---------------------------------------------------------- */

/* Whisper's 100 languages in token order, with the lowercase English names
 * that OpenAI's API reports in verbose_json. */
static const struct {
    const char *code, *name;
} LANGUAGES[] = {
    {"en", "english"},        {"zh", "chinese"},     {"de", "german"},        {"es", "spanish"},
    {"ru", "russian"},        {"ko", "korean"},      {"fr", "french"},        {"ja", "japanese"},
    {"pt", "portuguese"},     {"tr", "turkish"},     {"pl", "polish"},        {"ca", "catalan"},
    {"nl", "dutch"},          {"ar", "arabic"},      {"sv", "swedish"},       {"it", "italian"},
    {"id", "indonesian"},     {"hi", "hindi"},       {"fi", "finnish"},       {"vi", "vietnamese"},
    {"he", "hebrew"},         {"uk", "ukrainian"},   {"el", "greek"},         {"ms", "malay"},
    {"cs", "czech"},          {"ro", "romanian"},    {"da", "danish"},        {"hu", "hungarian"},
    {"ta", "tamil"},          {"no", "norwegian"},   {"th", "thai"},          {"ur", "urdu"},
    {"hr", "croatian"},       {"bg", "bulgarian"},   {"lt", "lithuanian"},    {"la", "latin"},
    {"mi", "maori"},          {"ml", "malayalam"},   {"cy", "welsh"},         {"sk", "slovak"},
    {"te", "telugu"},         {"fa", "persian"},     {"lv", "latvian"},       {"bn", "bengali"},
    {"sr", "serbian"},        {"az", "azerbaijani"}, {"sl", "slovenian"},     {"kn", "kannada"},
    {"et", "estonian"},       {"mk", "macedonian"},  {"br", "breton"},        {"eu", "basque"},
    {"is", "icelandic"},      {"hy", "armenian"},    {"ne", "nepali"},        {"mn", "mongolian"},
    {"bs", "bosnian"},        {"kk", "kazakh"},      {"sq", "albanian"},      {"sw", "swahili"},
    {"gl", "galician"},       {"mr", "marathi"},     {"pa", "punjabi"},       {"si", "sinhala"},
    {"km", "khmer"},          {"sn", "shona"},       {"yo", "yoruba"},        {"so", "somali"},
    {"af", "afrikaans"},      {"oc", "occitan"},     {"ka", "georgian"},      {"be", "belarusian"},
    {"tg", "tajik"},          {"sd", "sindhi"},      {"gu", "gujarati"},      {"am", "amharic"},
    {"yi", "yiddish"},        {"lo", "lao"},         {"uz", "uzbek"},         {"fo", "faroese"},
    {"ht", "haitian creole"}, {"ps", "pashto"},      {"tk", "turkmen"},       {"nn", "nynorsk"},
    {"mt", "maltese"},        {"sa", "sanskrit"},    {"lb", "luxembourgish"}, {"my", "myanmar"},
    {"bo", "tibetan"},        {"tl", "tagalog"},     {"mg", "malagasy"},      {"as", "assamese"},
    {"tt", "tatar"},          {"haw", "hawaiian"},   {"ln", "lingala"},       {"ha", "hausa"},
    {"ba", "bashkir"},        {"jw", "javanese"},    {"su", "sundanese"},     {"yue", "cantonese"},
};

const char *output_language_name(const char *code) {
    if (!code) return NULL;
    for (size_t i = 0; i < sizeof LANGUAGES / sizeof LANGUAGES[0]; i++)
        if (strcmp(LANGUAGES[i].code, code) == 0) return LANGUAGES[i].name;
    return NULL;
}

/* ---- Format names ------------------------------------------------------- */

int output_format_parse(const char *name, OutFormat *fmt) {
    static const struct {
        const char *name;
        OutFormat fmt;
    } NAMES[] = {
        {"text", OUT_TEXT}, {"txt", OUT_TEXT},
        {"json", OUT_JSON}, {"verbose_json", OUT_VERBOSE_JSON},
        {"srt", OUT_SRT},   {"vtt", OUT_VTT},
    };
    if (!name || !fmt) return DI_EINVAL;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        if (strcmp(NAMES[i].name, name) == 0) {
            *fmt = NAMES[i].fmt;
            return 0;
        }
    }
    return DI_EINVAL;
}

const char *output_format_ext(OutFormat fmt) {
    switch (fmt) {
    case OUT_TEXT:
        return "txt";
    case OUT_JSON:
        return "json";
    case OUT_VERBOSE_JSON:
        return "json";
    case OUT_SRT:
        return "srt";
    case OUT_VTT:
        return "vtt";
    }
    return NULL;
}

/* ---- A growing string --------------------------------------------------- */

/* Appends never fail loudly; a failed allocation sets oom and later appends
 * do nothing, so renderers check once at the end. */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n >= SIZE_MAX / 2 - b->len) { /* cannot happen for real text */
        b->oom = 1;
        return;
    }
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->oom = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(Buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

/* Hands the string to the caller, or frees it and fails on lack of memory. */
static int buf_finish(Buf *b, char **out, char *msg, size_t cap) {
    buf_add(b, "", 0); /* so an empty result is still an allocated "" */
    if (b->oom) {
        free(b->data);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory rendering output");
    }
    *out = b->data;
    return 0;
}

/* ---- Text helpers ------------------------------------------------------- */

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The span of s without leading and trailing whitespace. */
static const char *trim(const char *s, size_t *len) {
    if (!s) s = "";
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        n--;
    while (n > 0 && is_space(*s)) {
        s++;
        n--;
    }
    *len = n;
    return s;
}

/* Appends a cue's text. A run of line breaks (and the blanks around them)
 * becomes one newline, because a blank line would end the cue early. */
static void add_cue_text(Buf *b, const char *s, size_t n, int vtt_escape) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\n' || c == '\r') {
            while (i + 1 < n && is_space(s[i + 1]))
                i++;
            buf_add(b, "\n", 1);
        } else if (vtt_escape && c == '&') {
            buf_str(b, "&amp;");
        } else if (vtt_escape && c == '<') {
            buf_str(b, "&lt;");
        } else if (vtt_escape && c == '>') {
            buf_str(b, "&gt;");
        } else {
            buf_add(b, &c, 1);
        }
    }
}

/* ---- Timestamps --------------------------------------------------------- */

/* Milliseconds of t seconds, rounded to nearest; negative and NaN give 0 and
 * absurdly large values are capped so the conversion stays defined. */
static long long to_ms(double t) {
    double ms = t * 1000.0;
    if (!(ms > 0)) return 0;
    if (ms > 1e15) ms = 1e15;
    return llround(ms);
}

static void format_ms(long long ms, char sep, char *buf, size_t size) {
    snprintf(buf, size, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60,
             ms / 1000 % 60, sep, ms % 1000);
}

void output_timestamp(double t, char sep, char *buf, size_t size) {
    if (buf && size) format_ms(to_ms(t), sep, buf, size);
}

/* ---- text, srt, vtt ----------------------------------------------------- */

static int render_text(const WhisperResult *r, char **out, char *msg, size_t cap) {
    Buf b = {0};
    size_t n;
    const char *s = trim(r->text, &n);
    buf_add(&b, s, n);
    buf_add(&b, "\n", 1);
    return buf_finish(&b, out, msg, cap);
}

static int render_cues(const WhisperResult *r, int vtt, char **out, char *msg, size_t cap) {
    Buf b = {0};
    int cue = 0;
    if (vtt) buf_str(&b, "WEBVTT\n\n");
    for (int i = 0; i < r->n_segments; i++) {
        const WhisperSegment *seg = &r->segments[i];
        size_t n;
        const char *s = trim(seg->text, &n);
        if (n == 0) continue;
        long long start = to_ms(seg->start), end = to_ms(seg->end);
        if (end < start) end = start;
        char line[96], t0[32], t1[32];
        format_ms(start, vtt ? '.' : ',', t0, sizeof t0);
        format_ms(end, vtt ? '.' : ',', t1, sizeof t1);
        /* SRT numbers its cues; OpenAI's VTT carries no cue identifiers. */
        if (!vtt) {
            snprintf(line, sizeof line, "%d\n", ++cue);
            buf_str(&b, line);
        }
        snprintf(line, sizeof line, "%s --> %s\n", t0, t1);
        buf_str(&b, line);
        add_cue_text(&b, s, n, vtt);
        buf_str(&b, "\n\n");
    }
    return buf_finish(&b, out, msg, cap);
}

/* ---- json, verbose_json ------------------------------------------------- */

/* Times go out rounded to the millisecond. k / 1000.0 is the double nearest
 * the decimal k/1000, so printing with 15 significant digits shows exactly
 * that decimal ("4.2", not "4.2000000000000002"). */
static json_t *json_seconds(double t) {
    return json_real((double)to_ms(t) / 1000.0);
}

/* Metrics are floats; 6 significant digits is all they carry. Going through
 * the decimal text makes the printed value exactly that decimal. */
static json_t *json_metric(double x) {
    if (!isfinite(x)) return json_null();
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.6g", x);
    return json_real(strtod(tmp, NULL));
}

/* Sets obj[key] = val, taking val; fails if val could not be made. */
static int put(json_t *obj, const char *key, json_t *val) {
    if (!val) return -1;
    return json_object_set_new(obj, key, val);
}

/* A string value; NULL if s is not valid UTF-8 (or on lack of memory). */
static json_t *json_text(const char *s, size_t n) {
    return json_stringn(s ? s : "", n);
}

static json_t *segment_json(const WhisperSegment *seg) {
    json_t *o = json_object();
    json_t *tokens = json_array();
    int bad = !o || !tokens;
    for (int i = 0; !bad && i < seg->n_tokens; i++)
        bad = json_array_append_new(tokens, json_integer(seg->tokens[i])) != 0;
    const char *text = seg->text ? seg->text : "";
    bad = bad || put(o, "id", json_integer(seg->id)) || put(o, "seek", json_integer(seg->seek)) ||
          put(o, "start", json_seconds(seg->start)) || put(o, "end", json_seconds(seg->end)) ||
          put(o, "text", json_text(text, strlen(text)));
    if (!bad) {
        bad = put(o, "tokens", tokens);
        tokens = NULL; /* put took it, whether or not it succeeded */
    }
    bad = bad || put(o, "temperature", json_metric(seg->temperature)) ||
          put(o, "avg_logprob", json_metric(seg->avg_logprob)) ||
          put(o, "compression_ratio", json_metric(seg->compression_ratio)) ||
          put(o, "no_speech_prob", json_metric(seg->no_speech_prob));
    json_decref(tokens);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *verbose_json(const WhisperResult *r, const char *task, char *msg, size_t cap,
                            int *err) {
    /* language[] is a fixed field; never read past it. */
    char code[sizeof r->language + 1];
    size_t code_len = strnlen(r->language, sizeof r->language);
    memcpy(code, r->language, code_len);
    code[code_len] = '\0';
    /* An unknown code is reported as is rather than dropped. */
    const char *lang = output_language_name(code);
    if (!lang) lang = code;

    size_t n;
    const char *text = trim(r->text, &n);
    json_t *o = json_object();
    json_t *segs = json_array();
    *err = DI_EFORMAT;
    if (!o || !segs) goto fail_nomem;
    if (put(o, "task", json_string(task))) goto fail_nomem;
    if (put(o, "language", json_text(lang, strlen(lang)))) {
        di_fail(msg, cap, DI_EFORMAT, "language code is not valid UTF-8");
        goto fail;
    }
    if (put(o, "duration", json_seconds(r->duration))) goto fail_nomem;
    if (put(o, "text", json_text(text, n))) {
        di_fail(msg, cap, DI_EFORMAT, "transcript text is not valid UTF-8");
        goto fail;
    }
    for (int i = 0; i < r->n_segments; i++) {
        json_t *s = segment_json(&r->segments[i]);
        if (!s || json_array_append_new(segs, s)) {
            di_fail(msg, cap, DI_EFORMAT, "segment %d could not be encoded (text not UTF-8?)", i);
            goto fail;
        }
    }
    json_t *tmp = segs;
    segs = NULL;
    if (put(o, "segments", tmp)) goto fail_nomem;
    return o;
fail_nomem:
    *err = di_fail(msg, cap, DI_ENOMEM, "out of memory building JSON");
fail:
    json_decref(segs);
    json_decref(o);
    return NULL;
}

/* Serialises root (taking it) and appends a newline. */
static int dump_json(json_t *root, char **out, char *msg, size_t cap) {
    char *s = json_dumps(root, JSON_REAL_PRECISION(15));
    json_decref(root);
    if (!s) return di_fail(msg, cap, DI_ENOMEM, "out of memory serialising JSON");
    Buf b = {0};
    buf_str(&b, s);
    buf_add(&b, "\n", 1);
    free(s);
    return buf_finish(&b, out, msg, cap);
}

static int render_json(const WhisperResult *r, char **out, char *msg, size_t cap) {
    size_t n;
    const char *text = trim(r->text, &n);
    json_t *o = json_object();
    if (!o) return di_fail(msg, cap, DI_ENOMEM, "out of memory building JSON");
    if (put(o, "text", json_text(text, n))) {
        json_decref(o);
        return di_fail(msg, cap, DI_EFORMAT, "transcript text is not valid UTF-8");
    }
    return dump_json(o, out, msg, cap);
}

/* ---- Dispatcher --------------------------------------------------------- */

int output_render(const WhisperResult *r, OutFormat fmt, const char *task, char **out, char *msg,
                  size_t cap) {
    if (out) *out = NULL;
    if (!r || !out) return di_fail(msg, cap, DI_EINVAL, "output_render: NULL argument");
    if (r->n_segments < 0 || (r->n_segments > 0 && !r->segments))
        return di_fail(msg, cap, DI_EINVAL, "output_render: bad segment list");
    for (int i = 0; i < r->n_segments; i++)
        if (r->segments[i].n_tokens < 0 || (r->segments[i].n_tokens > 0 && !r->segments[i].tokens))
            return di_fail(msg, cap, DI_EINVAL, "output_render: segment %d has a bad token list",
                           i);
    if (!task) task = "transcribe";
    if (strcmp(task, "transcribe") != 0 && strcmp(task, "translate") != 0)
        return di_fail(msg, cap, DI_EINVAL, "unknown task '%s'", task);

    switch (fmt) {
    case OUT_TEXT:
        return render_text(r, out, msg, cap);
    case OUT_JSON:
        return render_json(r, out, msg, cap);
    case OUT_VERBOSE_JSON: {
        int err;
        json_t *root = verbose_json(r, task, msg, cap, &err);
        if (!root) return err;
        return dump_json(root, out, msg, cap);
    }
    case OUT_SRT:
        return render_cues(r, 0, out, msg, cap);
    case OUT_VTT:
        return render_cues(r, 1, out, msg, cap);
    }
    return di_fail(msg, cap, DI_EINVAL, "unknown output format %d", (int)fmt);
}
