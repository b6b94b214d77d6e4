/* diarist note: a transcript in, a diary entry out. Also the piece
 * `diarist transcribe --note` uses after each file. */
#include "cli/cli.h"
#include "notes/notes.h"
#include "whisper/whisper.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: diarist note [options] [FILE|-]\n\n"
            "Reads a transcript (plain text, or diarist's json / verbose_json output) from FILE\n"
            "or standard input and prints a structured diary entry.\n\n"
            "  -f, --format F        markdown (default) or json\n"
            "  -g, --generator G     auto (default: openai when OPENAI_API_KEY or\n"
            "                        OPENAI_BASE_URL is set), openai, extractive\n"
            "      --model NAME      chat model (default $DIARIST_NOTE_MODEL or gpt-4o-mini)\n"
            "      --base-url URL    OpenAI-compatible API (default $OPENAI_BASE_URL)\n"
            "      --date YYYY-MM-DD the day the recording was made (default: today)\n"
            "      --timezone TZ     whose day it is: an IANA name or an offset like +02:00\n"
            "                        (default $DIARIST_TIMEZONE, else $TZ, else UTC)\n"
            "  -l, --language CODE   the transcript's language (default: from the json, or en)\n");
}

const char *cli_timezone(void) {
    const char *tz = getenv("DIARIST_TIMEZONE");
    if (!tz || !*tz) tz = getenv("TZ");
    if (tz && *tz == ':') tz++; /* POSIX allows ":Europe/Berlin" */
    return tz && *tz ? tz : NULL;
}

int cli_note_format_parse(const char *s, int *json) {
    if (!strcmp(s, "json"))
        *json = 1;
    else if (!strcmp(s, "markdown") || !strcmp(s, "md"))
        *json = 0;
    else
        return -1;
    return 0;
}

/* Unix time of noon UTC on a YYYY-MM-DD day (noon keeps the day the same
 * in every timezone the entry may be rendered in). */
static int parse_date(const char *s, int64_t *out) {
    int y, m, d;
    char extra;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 12};
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_year != y - 1900 || back.tm_mon != m - 1 || back.tm_mday != d) return -1;
    *out = (int64_t)t;
    return 0;
}

static char *read_all(FILE *f) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (n + 1 == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
        }
    }
    if (buf) buf[n] = 0;
    return buf;
}

/* Plain text, or a JSON object with "text" (and maybe "language", which
 * verbose_json gives as an English name). */
static char *transcript_from_input(char *raw, char *lang, size_t lang_cap) {
    json_t *root = raw[0] == '{' ? json_loads(raw, 0, NULL) : NULL;
    if (!root) return strdup(raw);
    const char *text = json_string_value(json_object_get(root, "text"));
    const char *language = json_string_value(json_object_get(root, "language"));
    char *out = text ? strdup(text) : NULL;
    if (language && !lang[0]) {
        int id = whisper_lang_id(language);
        if (id >= 0) snprintf(lang, lang_cap, "%s", whisper_lang_code(id));
    }
    json_decref(root);
    return out;
}

int cli_note_emit(NoteGenerator *g, const NoteRequest *req, int json, FILE *out, char **text) {
    char msg[1024];
    json_t *entry = NULL;
    if (notes_generate(g, req, &entry, msg, sizeof msg)) {
        fprintf(stderr, "diarist: note: %s\n", msg);
        return -1;
    }
    char *s = json
                  ? json_dumps(entry, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))
                  : notes_render_markdown(entry);
    json_decref(entry);
    if (!s) {
        fprintf(stderr, "diarist: note: out of memory\n");
        return -1;
    }
    if (out) {
        fputs(s, out);
        if (s[0] && s[strlen(s) - 1] != '\n') fputc('\n', out);
        fflush(out);
    }
    if (text)
        *text = s;
    else
        free(s);
    return 0;
}

int cmd_note(int argc, char **argv) {
    static const struct option opts[] = {
        {"format", required_argument, 0, 'f'}, {"generator", required_argument, 0, 'g'},
        {"model", required_argument, 0, 'M'},  {"base-url", required_argument, 0, 'B'},
        {"date", required_argument, 0, 'D'},   {"language", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    NoteConfig cfg = notes_config_from_env();
    int json = 0, c;
    char lang[16] = "";
    NoteRequest req = {
        .recorded_at = -1, .uploaded_at = (int64_t)time(NULL), .timezone = cli_timezone()};
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:g:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (cli_note_format_parse(optarg, &json)) {
                fprintf(stderr, "diarist note: invalid --format '%s'\n", optarg);
                return 2;
            }
            break;
        case 'g':
            cfg.generator = optarg;
            break;
        case 'M':
            cfg.model = optarg;
            break;
        case 'B':
            cfg.base_url = optarg;
            break;
        case 'D':
            if (parse_date(optarg, &req.recorded_at)) {
                fprintf(stderr, "diarist note: invalid --date '%s' (want YYYY-MM-DD)\n", optarg);
                return 2;
            }
            break;
        case 'Z':
            req.timezone = optarg;
            break;
        case 'l':
            if (whisper_lang_id(optarg) < 0) {
                fprintf(stderr, "diarist note: unknown language '%s'\n", optarg);
                return 2;
            }
            snprintf(lang, sizeof lang, "%s", whisper_lang_code(whisper_lang_id(optarg)));
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return 2;
    }
    const char *path = optind < argc ? argv[optind] : "-";
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "diarist note: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *raw = read_all(f);
    if (f != stdin) fclose(f);
    char *transcript = raw ? transcript_from_input(raw, lang, sizeof lang) : NULL;
    free(raw);
    if (!transcript) {
        fprintf(stderr, "diarist note: %s: no transcript text found\n", path);
        return 1;
    }
    req.transcript = transcript;
    req.language = lang[0] ? lang : "en";

    char msg[1024];
    NoteGenerator *g;
    int rc = 1;
    if (notes_generator_create(&cfg, &g, msg, sizeof msg)) {
        fprintf(stderr, "diarist note: %s\n", msg);
    } else {
        di_log("info", "writing a diary entry with the %s generator", g->name);
        rc = cli_note_emit(g, &req, json, stdout, NULL) ? 1 : 0;
        notes_generator_free(g);
    }
    free(transcript);
    return rc;
}
