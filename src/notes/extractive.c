/*
 * extractive: the offline note generator. It fills the entry from the
 * transcript alone, with no model and no network, and says nothing the
 * speaker did not say: every summary line, event and reflection is a
 * sentence of the transcript, every name and tag a word of it.
 *
 * The steps, each a small function below:
 *   sentences   split on . ! ? (and blank lines or list bullets), words in each;
 *   centrality  TF-IDF vectors over content words, each sentence scored by
 *               its summed cosine similarity to the others (TextRank-lite);
 *   summary     the most central sentences, in the order they were said;
 *   events      sentences with cues of things done ("went", "met", ...);
 *   names       capitalised runs of words; places after in/at/near/...;
 *   mood        a small valence lexicon with negation and intensifiers;
 *   reflections sentences with "I think", "I feel", "I realised", ...;
 *   actions     "need to", "have to", "remember to", ...; their due day
 *               resolved against the recording's date ("tomorrow", "Friday").
 * Everything is deterministic: the same transcript gives the same bytes.
 */
#include "core/core.h"
#include "notes/lexicon.h"
#include "notes/notes.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORD 48
#define SUMMARY_MAX 3
#define EVENTS_MAX 5
#define REFLECTIONS_MAX 5
#define ACTIONS_MAX 10
#define TAGS_MAX 6
#define TAGS_MIN 3

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Length of the valid UTF-8 character at p, 0 if it is not one (overlong,
 * surrogate, beyond U+10FFFF, cut short). */
static int utf8_char(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (!n || p[0] > 0xf4) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

/* A copy of the transcript with every invalid byte made '?', so each piece
 * cut from it is a string JSON can hold. */
static char *valid_utf8(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        int k = utf8_char((const unsigned char *)s + i);
        if (k)
            memcpy(out + i, s + i, (size_t)k), i += (size_t)k;
        else
            out[i++] = '?';
    }
    out[n] = 0;
    return out;
}

/* Shortens s[0..len) so it does not end inside a character. */
static size_t char_boundary(const char *s, size_t len) {
    while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
        len--;
    return len;
}

/* A growing array with room at index n: items itself, or a larger copy,
 * or NULL (items untouched) when out of memory. */
static void *reserve(void *items, int n, int *cap, size_t size) {
    if (n < *cap) return items;
    int grown_cap = *cap ? *cap * 2 : 16;
    void *grown = realloc(items, size * (size_t)grown_cap);
    if (grown) *cap = grown_cap;
    return grown;
}

/* ---- Sentences and words --------------------------------------------------- */

typedef struct {
    int start, len;       /* in the sentence's text; len drops a trailing 's */
    char lower[MAX_WORD]; /* lowercase, ’ as ', without 's */
    int cap;              /* starts with an uppercase letter */
    int joined;           /* only spaces since the previous word: the same phrase */
} Word;

typedef struct {
    char *text;
    Word *words;
    int n_words;
    int *terms;      /* sorted term ids of the content words, each once */
    double *weights; /* unit-length TF-IDF weights of those terms */
    int n_terms;
    double centrality;
    int is_action;
} Sentence;

typedef struct {
    char word[MAX_WORD];
    int df, tf, first;
} Term;

/* The transcript taken apart, plus a word -> term table. */
typedef struct {
    Sentence *s;
    int n, cap;
    Term *terms;
    int n_terms, terms_cap;
    int *slots; /* open addressing into terms; -1 empty */
    int n_slots;
} Doc;

/* General punctuation (U+2000..U+206F: dashes, quotes, ellipsis) is not
 * part of words even though its UTF-8 bytes are high. */
static int utf8_punct(const unsigned char *p) {
    return p[0] == 0xe2 && (p[1] == 0x80 || p[1] == 0x81) && p[2] >= 0x80 && p[2] <= 0xbf;
}

static int is_word_byte(const unsigned char *p) {
    return isalnum(*p) || (*p >= 0x80 && !utf8_punct(p));
}

/* Length of an apostrophe (' or ’) at p, 0 if none. */
static int apostrophe(const unsigned char *p) {
    if (*p == '\'') return 1;
    return p[0] == 0xe2 && p[1] == 0x80 && p[2] == 0x99 ? 3 : 0;
}

static void lower_word(const char *s, int len, char *out) {
    int o = 0;
    if (len > MAX_WORD - 4) len = (int)char_boundary(s, MAX_WORD - 4); /* room for ’ -> ' */
    for (int i = 0; i < len && o < MAX_WORD - 1;) {
        int a = apostrophe((const unsigned char *)s + i);
        if (a) {
            out[o++] = '\'';
            i += a;
        } else {
            out[o++] = (char)tolower((unsigned char)s[i++]);
        }
    }
    out[o] = 0;
    if (o > 2 && !strcmp(out + o - 2, "'s")) out[o - 2] = 0;
}

static int tokenise(Sentence *st) {
    const unsigned char *t = (const unsigned char *)st->text;
    int cap = 0, prev_end = 0;
    for (int i = 0; t[i];) {
        if (!is_word_byte(t + i)) {
            i += utf8_punct(t + i) ? 3 : 1;
            continue;
        }
        int start = i;
        for (;;) {
            while (is_word_byte(t + i))
                i++;
            int a = apostrophe(t + i);
            if (a && is_word_byte(t + i + a))
                i += a;
            else if (t[i] == '-' && isalpha(t[i + 1]))
                i++;
            else
                break;
        }
        Word *words = reserve(st->words, st->n_words, &cap, sizeof(Word));
        if (!words) return DI_ENOMEM;
        st->words = words;
        Word *w = &words[st->n_words++];
        w->start = start;
        w->len = i - start;
        lower_word(st->text + start, w->len, w->lower);
        if (w->len > 2 && apostrophe(t + i - 2) == 1 && t[i - 1] == 's') w->len -= 2;
        if (w->len > 4 && apostrophe(t + i - 4) == 3 && t[i - 1] == 's') w->len -= 4;
        /* ASCII capitals and Latin-1's (À..Þ, as in "Émile"). */
        w->cap = isupper(t[start]) || (t[start] == 0xc3 && t[start + 1] >= 0x80 &&
                                       t[start + 1] <= 0x9e && t[start + 1] != 0x97);
        w->joined = 1;
        for (int k = prev_end; k < start; k++)
            if (t[k] != ' ') w->joined = 0;
        prev_end = i;
    }
    return 0;
}

/* Titles that end in a dot but not a sentence, and belong to the name
 * that follows ("Dr. Smith", "St. Louis"). */
static const char *const TITLES = "mr mrs ms dr st prof mt";

static int is_abbreviation(const char *s, int end) {
    static const char *const ABBREV = "vs etc e.g i.e jr sr";
    int b = end;
    while (b > 0 && (isalpha((unsigned char)s[b - 1]) || s[b - 1] == '.'))
        b--;
    char w[8];
    int n = end - b;
    if (n <= 0 || n >= (int)sizeof w) return 0;
    for (int i = 0; i < n; i++)
        w[i] = (char)tolower((unsigned char)s[b + i]);
    w[n] = 0;
    return in_list(ABBREV, w) || in_list(TITLES, w);
}

/* Ends the sentence in buf (if it has any word) and appends it. */
static int push_sentence(Doc *d, char *buf, int *len) {
    while (*len > 0 && buf[*len - 1] == ' ')
        (*len)--;
    buf[*len] = 0;
    int has_word = 0;
    for (int i = 0; i < *len; i++)
        has_word |= isalnum((unsigned char)buf[i]);
    if (!has_word) {
        *len = 0;
        return 0;
    }
    Sentence *s = reserve(d->s, d->n, &d->cap, sizeof(Sentence));
    if (!s) return DI_ENOMEM;
    d->s = s;
    Sentence *st = &d->s[d->n];
    memset(st, 0, sizeof *st);
    st->text = strdup(buf);
    if (!st->text) return DI_ENOMEM;
    d->n++;
    *len = 0;
    return tokenise(st);
}

static int is_bullet(const char *p) {
    return ((*p == '-' || *p == '*') && p[1] == ' ') || !strncmp(p, "\xe2\x80\xa2", 3);
}

/* Splits on . ! ? before a space or the end, on blank lines and before list
 * bullets. A single line break is a space: typed text wraps mid-sentence. */
static int split_sentences(Doc *d, const char *text) {
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    if (!buf) return DI_ENOMEM;
    int len = 0, rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char c = text[i];
        if (isspace((unsigned char)c)) {
            size_t j = i;
            int newlines = 0;
            while (j < n && isspace((unsigned char)text[j]))
                newlines += text[j++] == '\n';
            if (newlines >= 2 || (newlines && is_bullet(text + j)))
                rc = push_sentence(d, buf, &len);
            else if (len > 0)
                buf[len++] = ' ';
            i = j - 1;
            continue;
        }
        if (len == 0 && is_bullet(text + i)) {
            i += text[i] == '-' || text[i] == '*' ? 1 : 2;
            continue;
        }
        buf[len++] = c;
        if (c != '.' && c != '!' && c != '?') continue;
        int mark = len - 1;
        while (i + 1 < n && strchr(".!?\"')", text[i + 1]))
            buf[len++] = text[++i];
        int at_end = i + 1 >= n || isspace((unsigned char)text[i + 1]);
        if (at_end && !(c == '.' && is_abbreviation(buf, mark))) rc = push_sentence(d, buf, &len);
    }
    if (!rc) rc = push_sentence(d, buf, &len);
    free(buf);
    return rc;
}

/* ---- Terms and centrality -------------------------------------------------- */

static int is_content(const char *w) {
    return strlen(w) >= 3 && isalpha((unsigned char)w[0]) && !in_list(STOPWORDS, w) &&
           list_index(WEEKDAYS, w) < 0 && list_index(MONTHS, w) < 0;
}

static uint32_t hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int grow_slots(Doc *d) {
    int n = d->n_slots ? d->n_slots * 2 : 256;
    int *slots = malloc(sizeof(int) * (size_t)n);
    if (!slots) return DI_ENOMEM;
    for (int i = 0; i < n; i++)
        slots[i] = -1;
    for (int t = 0; t < d->n_terms; t++) {
        uint32_t h = hash(d->terms[t].word) & (uint32_t)(n - 1);
        while (slots[h] >= 0)
            h = (h + 1) & (uint32_t)(n - 1);
        slots[h] = t;
    }
    free(d->slots);
    d->slots = slots;
    d->n_slots = n;
    return 0;
}

/* The id of term w, added if new; -1 when out of memory. */
static int term_id(Doc *d, const char *w, int position) {
    if (2 * (d->n_terms + 1) > d->n_slots && grow_slots(d)) return -1;
    uint32_t mask = (uint32_t)(d->n_slots - 1), h = hash(w) & mask;
    for (; d->slots[h] >= 0; h = (h + 1) & mask)
        if (!strcmp(d->terms[d->slots[h]].word, w)) return d->slots[h];
    Term *terms = reserve(d->terms, d->n_terms, &d->terms_cap, sizeof(Term));
    if (!terms) return -1;
    d->terms = terms;
    Term *t = &d->terms[d->n_terms];
    memset(t, 0, sizeof *t);
    snprintf(t->word, sizeof t->word, "%s", w);
    t->first = position;
    d->slots[h] = d->n_terms;
    return d->n_terms++;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Collects each sentence's distinct content terms (with counts in weights
 * for now) and the document frequencies. */
static int collect_terms(Doc *d) {
    int position = 0;
    for (int i = 0; i < d->n; i++) {
        Sentence *st = &d->s[i];
        st->terms = malloc(sizeof(int) * (size_t)(st->n_words + 1));
        st->weights = malloc(sizeof(double) * (size_t)(st->n_words + 1));
        if (!st->terms || !st->weights) return DI_ENOMEM;
        int n = 0;
        for (int k = 0; k < st->n_words; k++, position++) {
            if (!is_content(st->words[k].lower)) continue;
            int id = term_id(d, st->words[k].lower, position);
            if (id < 0) return DI_ENOMEM;
            st->terms[n++] = id;
            d->terms[id].tf++;
        }
        qsort(st->terms, (size_t)n, sizeof(int), cmp_int);
        int u = 0;
        for (int k = 0; k < n; k++) {
            if (u > 0 && st->terms[u - 1] == st->terms[k]) {
                st->weights[u - 1] += 1;
                continue;
            }
            st->terms[u] = st->terms[k];
            st->weights[u++] = 1;
            d->terms[st->terms[k]].df++;
        }
        st->n_terms = u;
    }
    return 0;
}

static double idf(const Doc *d, int term) {
    return 1.0 + log((double)d->n / d->terms[term].df);
}

static void weigh_terms(Doc *d) {
    for (int i = 0; i < d->n; i++) {
        Sentence *st = &d->s[i];
        double norm = 0;
        for (int k = 0; k < st->n_terms; k++) {
            st->weights[k] *= idf(d, st->terms[k]);
            norm += st->weights[k] * st->weights[k];
        }
        norm = norm > 0 ? sqrt(norm) : 1;
        for (int k = 0; k < st->n_terms; k++)
            st->weights[k] /= norm;
    }
}

static double cosine(const Sentence *a, const Sentence *b) {
    double dot = 0;
    for (int i = 0, j = 0; i < a->n_terms && j < b->n_terms;) {
        if (a->terms[i] < b->terms[j])
            i++;
        else if (a->terms[i] > b->terms[j])
            j++;
        else
            dot += a->weights[i++] * b->weights[j++];
    }
    return dot;
}

static void score_centrality(Doc *d) {
    for (int i = 0; i < d->n; i++)
        for (int j = i + 1; j < d->n; j++) {
            double c = cosine(&d->s[i], &d->s[j]);
            d->s[i].centrality += c;
            d->s[j].centrality += c;
        }
}

typedef struct {
    double score;
    int index;
} Ranked;

static int cmp_ranked(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Of the sentences whose flag is set, the `limit` most central, in
 * transcript order, each text once (Whisper can loop on a phrase); returns
 * how many went into out, -1 when out of memory. */
static int pick_central(const Doc *d, const char *flags, int limit, int *out) {
    Ranked *r = malloc(sizeof(Ranked) * (size_t)(d->n + 1));
    if (!r) return -1;
    int n = 0, picked = 0;
    for (int i = 0; i < d->n; i++)
        if (flags[i]) r[n++] = (Ranked){d->s[i].centrality, i};
    qsort(r, (size_t)n, sizeof(Ranked), cmp_ranked);
    for (int i = 0; i < n && picked < limit; i++) {
        int seen = 0;
        for (int j = 0; j < picked && !seen; j++)
            seen = !strcmp(d->s[out[j]].text, d->s[r[i].index].text);
        if (!seen) out[picked++] = r[i].index;
    }
    free(r);
    qsort(out, (size_t)picked, sizeof(int), cmp_int);
    return picked;
}

/* ---- Text helpers ---------------------------------------------------------- */

/* Whether the lowercase word sequence `phrase` ("i think") starts at word k. */
static int phrase_at(const Sentence *st, int k, const char *phrase) {
    char w[MAX_WORD];
    const char *p = phrase;
    for (; *p; k++) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        if (k >= st->n_words || n >= sizeof w) return 0;
        memcpy(w, p, n);
        w[n] = 0;
        if (strcmp(st->words[k].lower, w)) return 0;
        p += n + (sp != NULL);
    }
    return 1;
}

static int phrase_in(const Sentence *st, const char *phrase) {
    for (int k = 0; k < st->n_words; k++)
        if (phrase_at(st, k, phrase)) return 1;
    return 0;
}

static int phrase_words(const char *phrase) {
    int n = 1;
    for (; *phrase; phrase++)
        n += *phrase == ' ';
    return n;
}

/* s[0..len) cut to at most max bytes at a word boundary, trailing
 * punctuation and spaces dropped; written into out (max + 4 bytes). */
static void clip(const char *s, size_t len, size_t max, char *out, int ellipsis) {
    int cut = len > max;
    if (cut) {
        len = max;
        while (len > 0 && s[len] != ' ')
            len--;
        if (len == 0) len = max;
        len = char_boundary(s, len);
    }
    while (len > 0 && (s[len - 1] == ' ' || strchr(",;:.!?-", s[len - 1])))
        len--;
    memcpy(out, s, len);
    if (cut && ellipsis) memcpy(out + len, "...", 3), len += 3;
    out[len] = 0;
}

/* A sentence as an entry line: whole when short, else clipped with "...". */
static json_t *sentence_line(const Sentence *st, size_t max) {
    size_t len = strlen(st->text);
    if (len <= max) return json_string(st->text);
    char *buf = malloc(max + 4);
    if (!buf) return NULL;
    clip(st->text, len, max, buf, 1);
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

static int append_sentence(json_t *list, const Sentence *st, size_t max) {
    json_t *s = sentence_line(st, max);
    return s && !json_array_append_new(list, s) ? 0 : DI_ENOMEM;
}

/* Sentences joined by spaces. */
static json_t *joined(const Doc *d, const int *idx, int n, size_t max_each) {
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += strlen(d->s[idx[i]].text) + 4;
    char *buf = malloc(total), *p = buf;
    if (!buf) return NULL;
    *p = 0;
    for (int i = 0; i < n; i++) {
        json_t *line = sentence_line(&d->s[idx[i]], max_each);
        if (!line) break;
        const char *text = json_string_value(line);
        size_t len = strlen(text);
        /* Bullet lines have no full stop; joined they would run together. */
        int stop = len && !strchr(".!?\"')", text[len - 1]);
        p += sprintf(p, "%s%s%s", i ? " " : "", text, stop ? "." : "");
        json_decref(line);
    }
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

/* ---- Dates ----------------------------------------------------------------- */

/* The request's day as noon UTC, so whole days can be added without any
 * timezone or daylight saving in the way. */
static time_t day_of(const char *date) {
    struct tm tm = {.tm_hour = 12};
    if (sscanf(date, "%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3) return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static json_t *date_json(time_t t) {
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    return json_string(buf);
}

static int day_number(const char *w) {
    char *end;
    long n = strtol(w, &end, 10);
    if (end == w || n < 1 || n > 31) return 0;
    return (!*end || !strcmp(end, "st") || !strcmp(end, "nd") || !strcmp(end, "rd") ||
            !strcmp(end, "th"))
               ? (int)n
               : 0;
}

/* "March 5", "March 5th", "5 March", "5th of March" at word k: that day in
 * the request's year, or the next year when it has already passed. */
static time_t explicit_date(const Sentence *st, int k, time_t base) {
    int month = list_index(MONTHS, st->words[k].lower), day = 0;
    if (month < 0) return 0;
    if (k + 1 < st->n_words) day = day_number(st->words[k + 1].lower);
    if (!day && k >= 1) day = day_number(st->words[k - 1].lower);
    if (!day && k >= 2 && !strcmp(st->words[k - 1].lower, "of"))
        day = day_number(st->words[k - 2].lower);
    if (!day) return 0;
    struct tm tm;
    gmtime_r(&base, &tm);
    for (int years = 0; years < 2; years++) {
        struct tm want = {
            .tm_year = tm.tm_year + years, .tm_mon = month, .tm_mday = day, .tm_hour = 12};
        time_t t = timegm(&want);
        struct tm back;
        gmtime_r(&t, &back);
        if (back.tm_mday != day) return 0; /* "February 30" */
        if (t >= base) return t;
    }
    return 0;
}

/* The due day a sentence names, relative to the request's date; 0 = none. */
static time_t due_date(const Sentence *st, time_t base) {
    const time_t day = 86400;
    struct tm tm;
    gmtime_r(&base, &tm);
    time_t found = 0;
    int strength = 0; /* an explicit date beats "tomorrow" beats "today" */
    for (int k = 0; k < st->n_words; k++) {
        const char *w = st->words[k].lower;
        time_t t = 0;
        int s = 0, wd;
        if ((t = explicit_date(st, k, base)))
            s = 5;
        else if (phrase_at(st, k, "day after tomorrow"))
            t = base + 2 * day, s = 4;
        else if (!strcmp(w, "tomorrow"))
            t = base + day, s = 3;
        else if ((wd = list_index(WEEKDAYS, w)) >= 0)
            t = base + ((wd - tm.tm_wday + 6) % 7 + 1) * day, s = 3;
        else if (phrase_at(st, k, "next week"))
            t = base + 7 * day, s = 2;
        else if (!strcmp(w, "today") || !strcmp(w, "tonight") || phrase_at(st, k, "this evening"))
            t = base, s = 1;
        if (s > strength) found = t, strength = s;
    }
    return found;
}

/* ---- Sections -------------------------------------------------------------- */

static int summary_count(int n) {
    return n <= 2 ? n : n <= 5 ? 2 : SUMMARY_MAX;
}

static int is_event(const Sentence *st) {
    size_t len = strlen(st->text);
    if (st->is_action || (len && st->text[len - 1] == '?')) return 0;
    for (int k = 0; k < st->n_words; k++)
        if (in_list(EVENT_CUES, st->words[k].lower)) return 1;
    return phrase_in(st, "this morning") || phrase_in(st, "this afternoon") ||
           phrase_in(st, "last night");
}

static int is_reflection(const Sentence *st) {
    for (int i = 0; REFLECTION_CUES[i]; i++)
        if (phrase_in(st, REFLECTION_CUES[i])) return 1;
    return 0;
}

/* Where a cue at word k stops being an intention: "don't need to",
 * "must have been", "should have", "going to the park", "going to be". */
static int weak_cue(const Sentence *st, int k, int after) {
    if (k > 0 && is_negator(st->words[k - 1].lower) && strcmp(st->words[k].lower, "don't"))
        return 1;
    if (after >= st->n_words) return 1;
    const char *next = st->words[after].lower;
    static const char *const NOT_VERBS =
        "have be been the a an my our his her their your bed sleep";
    if (in_list(NOT_VERBS, next)) return 1;
    return !strcmp(st->words[k].lower, "going") && st->words[after].cap;
}

/* The clause after the cue: up to ; : or ", but/so/because ...". */
static size_t clause_end(const char *s, size_t from) {
    static const char *const BREAKS[] = {", but ",   ", so ",       ", because ",
                                         ", which ", ", although ", ", though ",
                                         ", while ", " but ",       NULL};
    size_t end = strlen(s);
    for (size_t i = from; s[i]; i++) {
        if (s[i] == ';' || s[i] == ':' || s[i] == '!' || s[i] == '?') return i;
        for (int b = 0; BREAKS[b]; b++)
            if (!strncmp(s + i, BREAKS[b], strlen(BREAKS[b]))) return i;
    }
    return end;
}

/* The first intention in a sentence as {task, due}, or NULL. */
static json_t *action_item(const Sentence *st, time_t base) {
    for (int k = 0; k < st->n_words; k++) {
        for (int c = 0; ACTION_CUES[c]; c++) {
            if (!phrase_at(st, k, ACTION_CUES[c])) continue;
            int after = k + phrase_words(ACTION_CUES[c]);
            if (weak_cue(st, k, after)) continue;
            size_t from = (size_t)st->words[after].start;
            size_t end = clause_end(st->text, from);
            char task[208];
            clip(st->text + from, end - from, 200, task, 0);
            if (!task[0]) continue;
            task[0] = (char)toupper((unsigned char)task[0]);
            time_t due = due_date(st, base);
            return json_pack("{s:s, s:o}", "task", task, "due", due ? date_json(due) : json_null());
        }
    }
    return NULL;
}

/* ---- Names ----------------------------------------------------------------- */

typedef struct {
    char text[96];
    int place;
} Name;

typedef struct {
    Name *v;
    int n, cap;
} Names;

/* Lowercase words seen capitalised in the middle of a sentence, sorted. */
typedef struct {
    const char **v;
    int n;
} WordSet;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int mid_capitals(const Doc *d, WordSet *set) {
    size_t total = 1;
    for (int i = 0; i < d->n; i++)
        total += (size_t)d->s[i].n_words;
    set->v = malloc(sizeof(char *) * total);
    if (!set->v) return DI_ENOMEM;
    for (int i = 0; i < d->n; i++)
        for (int k = 1; k < d->s[i].n_words; k++)
            if (d->s[i].words[k].cap) set->v[set->n++] = d->s[i].words[k].lower;
    qsort(set->v, (size_t)set->n, sizeof(char *), cmp_str);
    return 0;
}

static int is_name_word(const WordSet *caps, const Sentence *st, int k) {
    const Word *w = &st->words[k];
    unsigned char first = (unsigned char)w->lower[0];
    if (!w->cap || w->len < 2 || !(isalpha(first) || first >= 0x80)) return 0;
    if (in_list(STOPWORDS, w->lower) || in_list(TITLES, w->lower) ||
        list_index(WEEKDAYS, w->lower) >= 0 || list_index(MONTHS, w->lower) >= 0 ||
        lexicon_weight(w->lower) != 0)
        return 0;
    /* A sentence's first word is capitalised anyway; it counts as a name
     * only if it is also capitalised in the middle of some sentence. */
    const char *key = w->lower;
    return k > 0 || bsearch(&key, caps->v, (size_t)caps->n, sizeof(char *), cmp_str);
}

/* Whether the name starting at word k follows a place preposition in the
 * same phrase ("near Zurich", "at the Louvre", "went to Porto"). */
static int place_context(const Sentence *st, int k) {
    int p = k - 1;
    if (p < 0 || !st->words[k].joined) return 0;
    if (!strcmp(st->words[p].lower, "the") && p > 0 && st->words[p].joined) p--;
    const char *prep = st->words[p].lower;
    if (in_list(PLACE_PREPS, prep)) return 1;
    if (strcmp(prep, "to") && strcmp(prep, "from")) return 0;
    return p > 0 && st->words[p].joined && in_list(MOTION, st->words[p - 1].lower);
}

/* Adds a name once: "Maria" after "Maria Lopez" is the same person, and
 * "Maria Lopez" after "Maria" completes her name. */
static int add_name(Names *ns, const char *text, int place) {
    for (int i = 0; i < ns->n; i++) {
        if (word_part(text, ns->v[i].text)) {
            ns->v[i].place |= place;
            return 0;
        }
        if (word_part(ns->v[i].text, text)) {
            snprintf(ns->v[i].text, sizeof ns->v[i].text, "%s", text);
            ns->v[i].place |= place;
            return 0;
        }
    }
    Name *v = reserve(ns->v, ns->n, &ns->cap, sizeof(Name));
    if (!v) return DI_ENOMEM;
    ns->v = v;
    snprintf(ns->v[ns->n].text, sizeof ns->v[ns->n].text, "%s", text);
    ns->v[ns->n++].place = place;
    return 0;
}

/* The end of a run of name words from k: "Anna Schmidt", "Ludwig van
 * Beethoven"; a comma or other punctuation ends it. */
static int name_end(const WordSet *caps, const Sentence *st, int k) {
    static const char *const PARTICLES = "de van von da del der di du la le";
    int end = k + 1;
    for (;;) {
        if (end < st->n_words && st->words[end].joined && is_name_word(caps, st, end))
            end++;
        else if (end + 1 < st->n_words && in_list(PARTICLES, st->words[end].lower) &&
                 st->words[end].joined && st->words[end + 1].joined &&
                 is_name_word(caps, st, end + 1))
            end += 2;
        else
            return end;
    }
}

/* "Dr. Smith", "St. Louis": a title joins the name after it. */
static int name_start(const Sentence *st, int k) {
    if (k == 0 || !in_list(TITLES, st->words[k - 1].lower)) return k;
    const Word *t = &st->words[k - 1];
    const char *gap = st->text + t->start + t->len, *next = st->text + st->words[k].start;
    return gap + 1 == next || (gap + 2 == next && gap[0] == '.') ? k - 1 : k;
}

static int collect_names(const Doc *d, Names *ns) {
    WordSet caps = {0};
    int rc = mid_capitals(d, &caps);
    for (int i = 0; i < d->n && !rc; i++) {
        const Sentence *st = &d->s[i];
        for (int k = 0; k < st->n_words && !rc;) {
            if (!is_name_word(&caps, st, k)) {
                k++;
                continue;
            }
            int end = name_end(&caps, st, k), start = name_start(st, k);
            const Word *first = &st->words[start], *last = &st->words[end - 1];
            size_t len = (size_t)(last->start + last->len - first->start);
            if (len > 95) len = char_boundary(st->text + first->start, 95);
            char text[96];
            snprintf(text, sizeof text, "%.*s", (int)len, st->text + first->start);
            rc = add_name(ns, text, place_context(st, start));
            k = end;
        }
    }
    free(caps.v);
    return rc;
}

/* Whether lowercase word w is part of any name found. */
static int in_names(const Names *ns, const char *w) {
    for (int i = 0; i < ns->n; i++) {
        char lower[96];
        size_t n = strlen(ns->v[i].text);
        for (size_t k = 0; k <= n; k++)
            lower[k] = (char)tolower((unsigned char)ns->v[i].text[k]);
        if (word_part(w, lower)) return 1;
    }
    return 0;
}

/* ---- Mood and tags --------------------------------------------------------- */

static json_t *mood(const Doc *d) {
    double sum = 0;
    int count = 0, pos = 0, neg = 0;
    for (int i = 0; i < d->n; i++) {
        const Sentence *st = &d->s[i];
        for (int k = 0; k < st->n_words; k++) {
            double w = lexicon_weight(st->words[k].lower);
            if (w == 0) continue;
            for (int b = k - 1; b >= 0 && b >= k - 3; b--) {
                if (is_negator(st->words[b].lower)) {
                    w = -0.5 * w; /* "not happy" is milder than "unhappy" */
                    break;
                }
                if (in_list(INTENSIFIERS, st->words[b].lower)) w *= 1.5;
            }
            sum += w;
            count++;
            pos += w > 0;
            neg += w < 0;
        }
    }
    double v = count ? sum / (count + 1) : 0;
    v = v > 1 ? 1 : v < -1 ? -1 : v;
    /* Sixteenths are exact in binary, so the JSON shows 0.5625, never
     * 0.59999999999999998; a lexicon's estimate is no finer anyway. */
    v = round(v * 16) / 16;
    if (v == 0) v = 0; /* not -0 */
    const char *label = v >= 0.45   ? "joyful"
                        : v >= 0.15 ? "content"
                        : v > -0.15 ? (pos && neg ? "mixed" : "neutral")
                        : v > -0.45 ? "uneasy"
                                    : "low";
    double strength = 0.7 * fmin(1, fabs(v) / 0.8) + 0.3 * fmin(1, count / 6.0);
    int intensity = count ? 1 + (int)lround(9 * strength) : 1;
    intensity = intensity > 10 ? 10 : intensity;
    return json_pack("{s:s, s:i, s:f}", "label", label, "intensity", intensity, "valence", v);
}

/* Past tenses and adverbs ("looked", "quickly") make poor topics. */
static int tag_candidate(const Doc *d, const Names *ns, int t) {
    const char *w = d->terms[t].word;
    size_t n = strlen(w);
    return n > 3 && !strchr(w, '\'') && strcmp(w + n - 2, "ed") && strcmp(w + n - 2, "ly") &&
           lexicon_weight(w) == 0 && !in_list(EVENT_CUES, w) && !in_names(ns, w);
}

/* Per term: [t] how often it follows a determiner within two words ("the
 * lake", "a small hotel"), a cheap sign of a noun; [n_terms + t] the summed
 * centrality of the sentences it is in. */
static double *tag_signals(const Doc *d) {
    static const char *const DETERMINERS = "the a an my our her his their your this that some";
    double *sig = calloc(2 * (size_t)d->n_terms + 1, sizeof(double));
    if (!sig) return NULL;
    for (int i = 0; i < d->n; i++) {
        const Sentence *st = &d->s[i];
        for (int j = 0; j < st->n_terms; j++)
            sig[d->n_terms + st->terms[j]] += st->centrality;
        for (int k = 1; k < st->n_words; k++) {
            int det = in_list(DETERMINERS, st->words[k - 1].lower) ||
                      (k >= 2 && in_list(DETERMINERS, st->words[k - 2].lower));
            if (!det || !st->words[k].joined) continue;
            for (int j = 0; j < st->n_terms; j++)
                if (!strcmp(d->terms[st->terms[j]].word, st->words[k].lower)) sig[st->terms[j]]++;
        }
    }
    return sig;
}

/* The most distinctive words: frequent in the transcript, concentrated in
 * few sentences (tf * idf), noun-like, and from central sentences. */
static json_t *tags(const Doc *d, const Names *ns) {
    Ranked *r = malloc(sizeof(Ranked) * (size_t)(d->n_terms + 1));
    double *sig = tag_signals(d);
    json_t *out = json_array();
    int n = 0, repeated = 0;
    for (int t = 0; r && sig && t < d->n_terms; t++) {
        if (!tag_candidate(d, ns, t)) continue;
        double noun = sig[t] > 0 ? 0.5 + 0.25 * fmin(sig[t], 4) : 0;
        /* The first appearance keeps equal scores in a fixed order. */
        double score = d->terms[t].tf * idf(d, t) + noun + 0.1 * sig[d->n_terms + t];
        r[n++] = (Ranked){score - 1e-9 * d->terms[t].first, t};
        repeated += d->terms[t].tf > 1;
    }
    if (r && sig && out) {
        qsort(r, (size_t)n, sizeof(Ranked), cmp_ranked);
        int want = repeated < TAGS_MIN ? TAGS_MIN : repeated > TAGS_MAX ? TAGS_MAX : repeated;
        for (int i = 0; i < n && i < want; i++)
            json_array_append_new(out, json_string(d->terms[r[i].index].word));
    } else {
        json_decref(out);
        out = NULL;
    }
    free(r);
    free(sig);
    return out;
}

/* A title from the first summary sentence: at most 60 bytes, ending on a
 * word that carries meaning, without trailing punctuation. */
static json_t *title(const Sentence *st) {
    char buf[72];
    size_t len = strlen(st->text);
    clip(st->text, len, 60, buf, 0);
    for (char *sp; len > 60 && (sp = strrchr(buf, ' '));) { /* "...and we finished the" */
        char lower[MAX_WORD];
        lower_word(sp + 1, (int)strlen(sp + 1), lower);
        if (!in_list(STOPWORDS, lower)) break;
        *sp = 0;
        size_t n = strlen(buf);
        while (n > 0 && strchr(",;:-", buf[n - 1]))
            buf[--n] = 0;
    }
    return json_string(buf[0] ? buf : "Diary entry");
}

/* ---- The generator --------------------------------------------------------- */

static void doc_free(Doc *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->s[i].text);
        free(d->s[i].words);
        free(d->s[i].terms);
        free(d->s[i].weights);
    }
    free(d->s);
    free(d->terms);
    free(d->slots);
}

static int analyse(Doc *d, const char *transcript) {
    char *text = valid_utf8(transcript);
    int rc = text ? split_sentences(d, text) : DI_ENOMEM;
    free(text);
    if (!rc) rc = collect_terms(d);
    if (rc) return rc;
    weigh_terms(d);
    score_centrality(d);
    return 0;
}

/* Fills the entry's sections from the analysed transcript. */
static int fill_entry(const Doc *d, const Names *ns, time_t base, json_t *e, int *idx,
                      char *flags) {
    json_t *people = json_object_get(e, "people"), *places = json_object_get(e, "places");
    json_t *actions = json_object_get(e, "action_items"),
           *events = json_object_get(e, "key_events");
    for (int i = 0; i < ns->n; i++)
        json_array_append_new(ns->v[i].place ? places : people, json_string(ns->v[i].text));
    for (int i = 0; i < d->n && json_array_size(actions) < ACTIONS_MAX; i++) {
        json_t *item = action_item(&d->s[i], base), *other;
        d->s[i].is_action = item != NULL;
        size_t k;
        json_array_foreach(actions, k, other) if (item && json_equal(item, other)) {
            json_decref(item); /* the same intention said twice */
            item = NULL;
        }
        if (item && json_array_append_new(actions, item)) return DI_ENOMEM;
    }

    if (d->n > 0) memset(flags, 1, (size_t)d->n);
    int n = pick_central(d, flags, summary_count(d->n), idx);
    if (n < 0) return DI_ENOMEM;
    if (json_object_set_new(e, "summary", joined(d, idx, n, 300)) ||
        json_object_set_new(e, "title", title(&d->s[idx[0]])))
        return DI_ENOMEM;

    for (int i = 0; i < d->n; i++)
        flags[i] = (char)is_event(&d->s[i]);
    n = pick_central(d, flags, EVENTS_MAX, idx);
    if (n < 0) return DI_ENOMEM;
    for (int i = 0; i < n; i++)
        if (append_sentence(events, &d->s[idx[i]], 200)) return DI_ENOMEM;

    for (int i = 0; i < d->n; i++)
        flags[i] = (char)is_reflection(&d->s[i]);
    n = pick_central(d, flags, REFLECTIONS_MAX, idx);
    if (n < 0) return DI_ENOMEM;
    if (json_object_set_new(e, "reflections", joined(d, idx, n, 300)) ||
        json_object_set_new(e, "mood", mood(d)) || json_object_set_new(e, "tags", tags(d, ns)))
        return DI_ENOMEM;
    return 0;
}

static int extractive_generate(NoteGenerator *g, const NoteRequest *req, json_t **entry, char *msg,
                               size_t cap) {
    (void)g;
    *entry = NULL;
    char date[16];
    notes_request_date(req, date, sizeof date);
    const char *lang = req->language && *req->language ? req->language : "en";
    json_t *e = notes_empty_entry(date, lang, "extractive");
    Doc d = {0};
    Names ns = {0};
    int rc = e ? analyse(&d, req->transcript) : DI_ENOMEM;
    int *idx = NULL;
    char *flags = NULL;
    if (!rc && d.n > 0) {
        idx = malloc(sizeof(int) * (size_t)d.n);
        flags = malloc((size_t)d.n);
        rc = idx && flags ? collect_names(&d, &ns) : DI_ENOMEM;
        if (!rc) rc = fill_entry(&d, &ns, day_of(date), e, idx, flags);
    }
    free(idx);
    free(flags);
    free(ns.v);
    doc_free(&d);
    if (rc) {
        json_decref(e);
        return di_fail(msg, cap, rc, "extractive note: %s", di_strerror(rc));
    }
    *entry = e;
    return 0;
}

static void extractive_destroy(NoteGenerator *g) {
    free(g);
}

int notes_extractive_create(const NoteConfig *cfg, NoteGenerator **out, char *msg, size_t cap) {
    (void)cfg;
    if (!out) return di_fail(msg, cap, DI_EINVAL, "notes_extractive_create: no output pointer");
    NoteGenerator *g = calloc(1, sizeof *g);
    if (!g) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    g->name = "extractive";
    g->generate = extractive_generate;
    g->destroy = extractive_destroy;
    *out = g;
    return 0;
}
