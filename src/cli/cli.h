/*
 * cli: the `diarist` command line. main.c picks the subcommand; each
 * subcommand lives in its own file and returns the process exit status
 * (0 success, 1 failure, 2 usage error).
 */
#ifndef DIARIST_CLI_H
#define DIARIST_CLI_H

#include <stdio.h>

#include "meta/meta.h"
#include "notes/notes.h"
#include "queue/queue.h"
#include "store/store.h"

int cmd_transcribe(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_gen_model(int argc, char **argv);
int cmd_note(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_loadtest(int argc, char **argv);
int cmd_init_aws(int argc, char **argv);

/* Default thread count: the cores this process may use, at most 8. */
int cli_default_threads(void);
/* Parses a whole decimal int / float option value; 0 on success. */
int cli_int(const char *s, int lo, int hi, int *out);
int cli_float(const char *s, float lo, float hi, float *out);
/* The model file for -m's value, else $DIARIST_MODEL: a path, or a
 * published name already pulled. NULL (with the reason on stderr) when
 * neither is given or the name cannot be resolved. */
const char *cli_model_path(const char *flag);
/* The service's model (worker, run): like cli_model_path, but with neither
 * -m nor DIARIST_MODEL it uses CLI_SERVICE_MODEL, pulling it on the first
 * start with a progress bar. NULL (the reason on stderr, naming
 * DIARIST_MODEL and `diarist model pull`) when that cannot be done. */
#define CLI_SERVICE_MODEL "base.en"
const char *cli_service_model_path(const char *flag);
/* Downloads a published model into dir (NULL: the model directory) with
 * progress on stderr: a bar on a terminal, else a JSON log line per tenth.
 * The models_pull result; the file's path in path. */
int cli_model_pull(const char *name, const char *dir, char *path, size_t cap, char *msg,
                   size_t msgcap);

/* The service's backends (backends.c), from the environment:
 * DIARIST_DATA (default ./diarist-data) holds blobs/$AUDIO_BUCKET_NAME and
 * diarist.db (jobs, notes and the audio-processing-queue);
 * DIARIST_STORE_URL, DIARIST_META_URL and DIARIST_QUEUE_URL override each
 * (file://..., sqlite://...; later s3://, dynamodb, SQS URLs). */
typedef struct {
    Store *store;
    Meta *meta;
    Queue *queue;
} CliBackends;
int cli_backends_open(CliBackends *b, char *msg, size_t cap);
void cli_backends_close(CliBackends *b);

/* Shared by `note` and `transcribe --note` (note.c). */
/* The diarist's timezone for dating entries: $DIARIST_TIMEZONE, else $TZ,
 * else NULL (UTC). */
const char *cli_timezone(void);
/* "json" -> 1, "markdown"/"md" -> 0; -1 for anything else. */
int cli_note_format_parse(const char *s, int *json);
/* Generates an entry and renders it (json or markdown) to out (if not NULL)
 * and/or into *text (caller frees); errors are reported on stderr. */
int cli_note_emit(NoteGenerator *g, const NoteRequest *req, int json, FILE *out, char **text);

#endif
