/* diarist transcribe: audio files in, transcripts out. */
#include "audio/audio.h"
#include "cli/cli.h"
#include "output/output.h"
#include "whisper/whisper.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_FORMATS 5

typedef struct {
    const char *model;
    int threads;
    WhisperParams wp;
    OutFormat formats[MAX_FORMATS];
    int n_formats;
    const char *out_dir; /* -o: write files into this folder */
    int beside;          /* -O: write files next to each input */
    int progress;        /* -1 auto (long files), 0 off, 1 on */
    int note;            /* also write a diary entry */
    int note_json;       /* ... as json rather than markdown */
    int batch;           /* files decoded together, 1..WHISPER_BATCH_MAX_LANES */
    NoteGenerator *notes;
} Options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: diarist transcribe [options] FILE... ('-' reads standard input)\n\n"
            "  -m, --model PATH          ggml Whisper model (default $DIARIST_MODEL)\n"
            "  -t, --threads N           threads (default: available cores, at most 8)\n"
            "  -l, --language CODE       spoken language, or 'auto' (default: auto on\n"
            "                            multilingual models, en on English-only ones)\n"
            "      --translate           translate into English\n"
            "      --beam-size N         beam search with N beams (default: greedy)\n"
            "      --patience F          beam search patience (default 1.0)\n"
            "      --best-of N           candidates sampled at temperature > 0 (default 5)\n"
            "      --temperature F       first sampling temperature (default 0)\n"
            "      --temperature-increment F  fallback step (default 0.2)\n"
            "      --no-fallback         never retry a window at a higher temperature\n"
            "      --compression-ratio-threshold F  (default 2.4)\n"
            "      --logprob-threshold F (default -1.0)\n"
            "      --no-speech-threshold F (default 0.6)\n"
            "      --no-condition        do not condition a window on the previous text\n"
            "      --prompt TEXT         initial prompt (names, spelling, style)\n"
            "      --no-timestamps       decode without timestamp tokens\n"
            "      --seed N              seed for sampling (default 0)\n"
            "  -b, --batch N             decode up to N files (or pieces of long files) as\n"
            "                            one batch, 1..7 (default 1: one after another);\n"
            "                            every transcript is the same either way, and they\n"
            "                            are written in the order of the files\n"
            "      --chunk S             cut audio longer than 1.25 x S seconds at the\n"
            "                            quietest half second near every S seconds and decode\n"
            "                            the pieces independently (default 0: never; >= 5)\n"
            "  -f, --format LIST         text, json, verbose_json, srt, vtt (comma-separated;\n"
            "                            default text)\n"
            "  -o, --output-dir DIR      write FILE's transcript into DIR as NAME.EXT\n"
            "  -O, --output-beside       write each transcript next to its input\n"
            "      --progress / --no-progress  progress lines on stderr (default: files > 60 s)\n"
            "      --note                also write a diary entry (see 'diarist note --help';\n"
            "                            NAME.note.md beside the transcript with -o or -O)\n"
            "      --note-format F       markdown (default) or json\n");
}

enum {
    OPT_TRANSLATE = 256,
    OPT_BEAM,
    OPT_PATIENCE,
    OPT_BEST_OF,
    OPT_TEMP,
    OPT_TEMP_INC,
    OPT_NO_FALLBACK,
    OPT_CRT,
    OPT_LPT,
    OPT_NST,
    OPT_NO_COND,
    OPT_PROMPT,
    OPT_NO_TS,
    OPT_SEED,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_NOTE,
    OPT_NOTE_FORMAT,
    OPT_CHUNK
};

static const struct option long_opts[] = {
    {"model", required_argument, 0, 'm'},
    {"threads", required_argument, 0, 't'},
    {"language", required_argument, 0, 'l'},
    {"translate", no_argument, 0, OPT_TRANSLATE},
    {"beam-size", required_argument, 0, OPT_BEAM},
    {"patience", required_argument, 0, OPT_PATIENCE},
    {"best-of", required_argument, 0, OPT_BEST_OF},
    {"temperature", required_argument, 0, OPT_TEMP},
    {"temperature-increment", required_argument, 0, OPT_TEMP_INC},
    {"no-fallback", no_argument, 0, OPT_NO_FALLBACK},
    {"compression-ratio-threshold", required_argument, 0, OPT_CRT},
    {"logprob-threshold", required_argument, 0, OPT_LPT},
    {"no-speech-threshold", required_argument, 0, OPT_NST},
    {"no-condition", no_argument, 0, OPT_NO_COND},
    {"prompt", required_argument, 0, OPT_PROMPT},
    {"no-timestamps", no_argument, 0, OPT_NO_TS},
    {"seed", required_argument, 0, OPT_SEED},
    {"batch", required_argument, 0, 'b'},
    {"chunk", required_argument, 0, OPT_CHUNK},
    {"format", required_argument, 0, 'f'},
    {"output-dir", required_argument, 0, 'o'},
    {"output-beside", no_argument, 0, 'O'},
    {"progress", no_argument, 0, OPT_PROGRESS},
    {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"note", no_argument, 0, OPT_NOTE},
    {"note-format", required_argument, 0, OPT_NOTE_FORMAT},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int bad_value(const char *opt, const char *value) {
    fprintf(stderr, "diarist transcribe: invalid value '%s' for %s\n", value, opt);
    return 2;
}

static int parse_formats(const char *list, Options *o) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    o->n_formats = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->n_formats == MAX_FORMATS || output_format_parse(tok, &o->formats[o->n_formats]))
            return -1;
        o->n_formats++;
    }
    return o->n_formats ? 0 : -1;
}

/* Parses flags into o; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, Options *o) {
    *o = (Options){.threads = cli_default_threads(),
                   .wp = whisper_default_params(),
                   .formats = {OUT_TEXT},
                   .n_formats = 1,
                   .progress = -1,
                   .batch = 1};
    int c, seed;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:l:f:o:Ob:h", long_opts, NULL)) != -1) {
        WhisperParams *p = &o->wp;
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case 't':
            if (cli_int(optarg, 1, 256, &o->threads)) return bad_value("--threads", optarg);
            break;
        case 'l':
            p->language = optarg;
            break;
        case OPT_TRANSLATE:
            p->translate = 1;
            break;
        case OPT_BEAM:
            if (cli_int(optarg, 0, 16, &p->beam_size)) return bad_value("--beam-size", optarg);
            break;
        case OPT_PATIENCE:
            if (cli_float(optarg, 0.01f, 100, &p->patience)) return bad_value("--patience", optarg);
            break;
        case OPT_BEST_OF:
            if (cli_int(optarg, 1, 16, &p->best_of)) return bad_value("--best-of", optarg);
            break;
        case OPT_TEMP:
            if (cli_float(optarg, 0, 1, &p->temperature)) return bad_value("--temperature", optarg);
            break;
        case OPT_TEMP_INC:
            if (cli_float(optarg, 0, 1, &p->temperature_increment))
                return bad_value("--temperature-increment", optarg);
            break;
        case OPT_NO_FALLBACK:
            p->temperature_increment = 0;
            break;
        case OPT_CRT:
            if (cli_float(optarg, 0, 1e6f, &p->compression_ratio_threshold))
                return bad_value("--compression-ratio-threshold", optarg);
            break;
        case OPT_LPT:
            if (cli_float(optarg, -1e6f, 0, &p->logprob_threshold))
                return bad_value("--logprob-threshold", optarg);
            break;
        case OPT_NST:
            if (cli_float(optarg, 0, 1, &p->no_speech_threshold))
                return bad_value("--no-speech-threshold", optarg);
            break;
        case OPT_NO_COND:
            p->condition_on_previous_text = 0;
            break;
        case OPT_PROMPT:
            p->initial_prompt = optarg;
            break;
        case OPT_NO_TS:
            p->without_timestamps = 1;
            break;
        case OPT_SEED:
            if (cli_int(optarg, 0, 2147483647, &seed)) return bad_value("--seed", optarg);
            p->seed = (uint64_t)seed;
            break;
        case 'b':
            if (cli_int(optarg, 1, WHISPER_BATCH_MAX_LANES, &o->batch))
                return bad_value("--batch", optarg);
            break;
        case OPT_CHUNK:
            if (strcmp(optarg, "0") == 0)
                p->chunk_seconds = 0;
            else if (cli_float(optarg, 5, 86400, &p->chunk_seconds))
                return bad_value("--chunk", optarg);
            break;
        case 'f':
            if (parse_formats(optarg, o)) return bad_value("--format", optarg);
            break;
        case 'o':
            o->out_dir = optarg;
            break;
        case 'O':
            o->beside = 1;
            break;
        case OPT_PROGRESS:
            o->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            o->progress = 0;
            break;
        case OPT_NOTE:
            o->note = 1;
            break;
        case OPT_NOTE_FORMAT:
            if (cli_note_format_parse(optarg, &o->note_json))
                return bad_value("--note-format", optarg);
            o->note = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "diarist transcribe: no input file (use '-' for standard input)\n");
        usage(stderr);
        return 2;
    }
    if (o->out_dir && o->beside) {
        fprintf(stderr, "diarist transcribe: choose one of --output-dir and --output-beside\n");
        return 2;
    }
    o->model = cli_model_path(o->model);
    if (!o->model) {
        fprintf(stderr, "diarist transcribe: no model: pass -m PATH|NAME or set DIARIST_MODEL (see "
                        "diarist model list)\n");
        return 2;
    }
    return -1;
}

typedef struct {
    const char *name;
    double last;
} Progress;

static void on_progress(void *ud, double done, double total) {
    Progress *p = ud;
    if (done - p->last < 30.0 && done < total) return;
    p->last = done;
    di_log("info", "progress %s: %.0f%% (%.1f / %.1f s)", p->name,
           total > 0 ? 100.0 * done / total : 100.0, done, total);
}

/* Output path for input `in` and extension ext: DIR/NAME.EXT or IN_DIR/NAME.EXT. */
static void output_path(const Options *o, const char *in, const char *ext, char *path, size_t n) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", in);
    snprintf(b, sizeof b, "%s", in);
    const char *base = strcmp(in, "-") ? basename(a) : "stdin";
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    const char *dir = o->out_dir ? o->out_dir : (strcmp(in, "-") ? dirname(b) : ".");
    snprintf(path, n, "%s/%s.%s", dir, stem, ext);
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int emit(const Options *o, const char *in, const WhisperResult *r) {
    const char *task = o->wp.translate ? "translate" : "transcribe";
    for (int i = 0; i < o->n_formats; i++) {
        char *text, msg[256];
        if (output_render(r, o->formats[i], task, &text, msg, sizeof msg)) {
            fprintf(stderr, "diarist transcribe: %s: %s\n", in, msg);
            return -1;
        }
        int rc = 0;
        if (o->out_dir || o->beside) {
            char path[8192];
            output_path(o, in, output_format_ext(o->formats[i]), path, sizeof path);
            if (write_file(path, text)) {
                fprintf(stderr, "diarist transcribe: cannot write %s: %s\n", path, strerror(errno));
                rc = -1;
            } else {
                di_log("info", "wrote %s", path);
            }
        } else {
            fputs(text, stdout);
            fflush(stdout);
        }
        free(text);
        if (rc) return rc;
    }
    return 0;
}

/* The diary entry for one transcript: dated by the recording's own
 * creation time when the audio carries one, else by now. */
static int emit_note(const Options *o, const char *in, const WhisperResult *r,
                     int64_t recorded_at) {
    NoteRequest req = {.transcript = r->text ? r->text : "",
                       .language = r->language,
                       .recorded_at = recorded_at,
                       .uploaded_at = (int64_t)time(NULL),
                       .timezone = cli_timezone()};
    if (!o->out_dir && !o->beside) return cli_note_emit(o->notes, &req, o->note_json, stdout, NULL);
    char *text = NULL, path[8192];
    if (cli_note_emit(o->notes, &req, o->note_json, NULL, &text)) return -1;
    output_path(o, in, o->note_json ? "note.json" : "note.md", path, sizeof path);
    int rc = write_file(path, text);
    if (rc)
        fprintf(stderr, "diarist transcribe: cannot write %s: %s\n", path, strerror(errno));
    else
        di_log("info", "wrote %s", path);
    free(text);
    return rc;
}

enum { FILE_WAITING, FILE_DECODING, FILE_DONE, FILE_FAILED };

/* One input file on its way through: its audio until the engine has read
 * it, then its result until it is written. */
typedef struct {
    const char *in;
    AudioPcm pcm;
    Progress prog;
    WhisperResult r;
    double t0, secs;
    int state; /* FILE_* */
} FileJob;

static int job_load(const Options *o, FileJob *j, WhisperParams *wp) {
    char msg[1024];
    if (audio_decode_file(j->in, &j->pcm, msg, sizeof msg)) {
        fprintf(stderr, "diarist transcribe: %s: %s\n", j->in, msg);
        return -1;
    }
    *wp = o->wp;
    j->prog = (Progress){j->in, 0};
    if (o->progress == 1 || (o->progress == -1 && j->pcm.duration > 60.0)) {
        wp->progress = on_progress;
        wp->progress_ud = &j->prog;
    }
    j->t0 = di_now();
    return 0;
}

/* Writes a finished job's outputs and frees what it held. */
static int job_finish(const Options *o, FileJob *j) {
    int rc = -1;
    if (j->state == FILE_DONE) {
        di_log("info", "transcribed %s: %.1f s of audio in %.2f s (%.1fx real time), %d segments",
               j->in, j->pcm.duration, j->secs, j->secs > 0 ? j->pcm.duration / j->secs : 0.0,
               j->r.n_segments);
        rc = emit(o, j->in, &j->r);
        if (!rc && o->note) rc = emit_note(o, j->in, &j->r, j->pcm.creation_time);
    }
    whisper_result_free(&j->r);
    audio_pcm_free(&j->pcm);
    return rc;
}

static int transcribe_one(const Options *o, WhisperState *st, FileJob *j) {
    WhisperParams wp;
    if (job_load(o, j, &wp)) return -1;
    char msg[1024];
    if (whisper_transcribe(st, j->pcm.samples, j->pcm.n_samples, &wp, &j->r, msg, sizeof msg)) {
        fprintf(stderr, "diarist transcribe: %s: %s\n", j->in, msg);
        j->state = FILE_FAILED;
    } else {
        j->secs = di_now() - j->t0;
        j->state = FILE_DONE;
    }
    return job_finish(o, j);
}

static void job_done(void *ud, int err, const char *msg) {
    FileJob *j = ud;
    if (err) {
        fprintf(stderr, "diarist transcribe: %s: %s\n", j->in, msg);
        j->state = FILE_FAILED;
    } else {
        j->secs = di_now() - j->t0;
        j->state = FILE_DONE;
    }
}

/* Up to o->batch files decode together, a new one joining as soon as one
 * ends; each is written once it and every file before it are done, so the
 * output comes in the order of the files, as without --batch. */
static int transcribe_batched(const Options *o, WhisperState *st, FileJob *jobs, int n) {
    char msg[1024];
    WhisperBatch *b;
    if (whisper_batch_create(st, o->batch, &b, msg, sizeof msg)) {
        fprintf(stderr, "diarist transcribe: %s\n", msg);
        return n;
    }
    int failed = 0, next_add = 0, next_out = 0, decoding = 0;
    while (next_out < n) {
        while (next_add < n && decoding < o->batch) {
            FileJob *j = &jobs[next_add++];
            WhisperParams wp;
            if (job_load(o, j, &wp)) {
                j->state = FILE_FAILED;
                continue;
            }
            if (whisper_batch_add(b, j->pcm.samples, j->pcm.n_samples, &wp, &j->r, job_done, j, msg,
                                  sizeof msg)) {
                fprintf(stderr, "diarist transcribe: %s: %s\n", j->in, msg);
                j->state = FILE_FAILED;
                continue;
            }
            /* The batch has read the samples; the duration stays. */
            free(j->pcm.samples);
            j->pcm.samples = NULL;
            j->state = FILE_DECODING;
            decoding++;
        }
        for (; next_out < n && jobs[next_out].state >= FILE_DONE; next_out++)
            failed += job_finish(o, &jobs[next_out]) != 0;
        if (next_out == n) break;
        if (whisper_batch_pending(b) == 0) {
            decoding = 0;
            if (next_add < n) continue;
            break; /* nothing left to step: what is not done failed */
        }
        if (whisper_batch_step(b, msg, sizeof msg) < 0) {
            fprintf(stderr, "diarist transcribe: %s\n", msg);
            break;
        }
        decoding = 0;
        for (int i = next_out; i < next_add; i++)
            decoding += jobs[i].state == FILE_DECODING;
    }
    whisper_batch_free(b); /* ends any job still in it with an error */
    for (; next_out < n; next_out++) {
        if (jobs[next_out].state < FILE_DONE) jobs[next_out].state = FILE_FAILED;
        failed += job_finish(o, &jobs[next_out]) != 0;
    }
    return failed;
}

int cmd_transcribe(int argc, char **argv) {
    Options o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0) return status;
    if (o.out_dir && mkdir(o.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "diarist transcribe: cannot create %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    char msg[1024];
    WhisperModel *model;
    if (whisper_model_load(o.model, &model, msg, sizeof msg)) {
        fprintf(stderr, "diarist transcribe: %s\n", msg);
        return 1;
    }
    WhisperState *st;
    if (whisper_state_create(model, o.threads, &st, msg, sizeof msg)) {
        fprintf(stderr, "diarist transcribe: %s\n", msg);
        whisper_model_free(model);
        return 1;
    }
    if (o.note) {
        NoteConfig cfg = notes_config_from_env();
        if (notes_generator_create(&cfg, &o.notes, msg, sizeof msg)) {
            fprintf(stderr, "diarist transcribe: %s\n", msg);
            whisper_state_free(st);
            whisper_model_free(model);
            return 1;
        }
    }
    di_log("info", "model %s loaded from %s (%d threads, BLAS kernels %s)",
           whisper_model_type(model), o.model, o.threads, whisper_blas_core());
    int n = argc - optind, failed = 0;
    FileJob *jobs = calloc((size_t)n, sizeof *jobs);
    if (!jobs) {
        fprintf(stderr, "diarist transcribe: out of memory\n");
        failed = n;
    }
    for (int i = 0; jobs && i < n; i++)
        jobs[i].in = argv[optind + i];
    if (jobs && o.batch > 1) {
        failed = transcribe_batched(&o, st, jobs, n);
    } else {
        for (int i = 0; jobs && i < n; i++)
            failed += transcribe_one(&o, st, &jobs[i]) != 0;
    }
    free(jobs);
    notes_generator_free(o.notes);
    whisper_state_free(st);
    whisper_model_free(model);
    return failed ? 1 : 0;
}
