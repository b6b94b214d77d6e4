/*
 * output: renders a WhisperResult in the response formats of OpenAI's
 * transcription API (text, json, verbose_json, srt, vtt).
 *
 * Every renderer returns a new NUL-terminated UTF-8 string that the caller
 * frees with free(). Every format ends with a newline, so the string can be
 * written to a file or sent as an HTTP body as is.
 *
 * Conventions shared by all formats:
 * - A NULL r->text or segment text reads as the empty string.
 * - "text" and "json" use r->text with surrounding whitespace trimmed; an
 *   empty transcript gives "\n" and {"text": ""} respectively.
 * - verbose_json keeps each segment's text exactly as decoded (with its
 *   leading space, as OpenAI does), reports the language by its English name
 *   ("english"), rounds times to the millisecond and the per-segment metrics
 *   to 6 significant digits; a non-finite metric is written as null.
 * - srt and vtt skip segments whose trimmed text is empty, clamp negative
 *   times to 0 and an end before its start to the start, and collapse runs of
 *   line breaks inside a cue so that a cue never contains a blank line. vtt
 *   also escapes '&', '<' and '>' as WebVTT requires.
 * - Text must already be valid UTF-8 (the engine guarantees it); the JSON
 *   formats fail with DI_EFORMAT otherwise.
 */
#ifndef DIARIST_OUTPUT_H
#define DIARIST_OUTPUT_H

#include <stddef.h>

#include "whisper/whisper.h"

typedef enum { OUT_TEXT, OUT_JSON, OUT_VERBOSE_JSON, OUT_SRT, OUT_VTT } OutFormat;

/* "text" (or "txt"), "json", "verbose_json", "srt", "vtt"; DI_EINVAL for
 * anything else. */
int output_format_parse(const char *name, OutFormat *fmt);
/* File extension without the dot: "txt", "json", "json", "srt", "vtt";
 * NULL for a value outside the enum. */
const char *output_format_ext(OutFormat fmt);
/* English name of a Whisper language code ("en" -> "english"); NULL when the
 * code is not one of Whisper's languages. */
const char *output_language_name(const char *code);

/* Renders r as fmt into *out (caller frees). task is "transcribe" or
 * "translate" (NULL means "transcribe") and appears in verbose_json. */
int output_render(const WhisperResult *r, OutFormat fmt, const char *task, char **out, char *msg,
                  size_t cap);

/* SRT ("HH:MM:SS,mmm") or VTT ("HH:MM:SS.mmm") timestamp of t seconds,
 * rounded to the nearest millisecond; negative or NaN reads as 0. Hours grow
 * past two digits when needed. buf needs 32 bytes. */
void output_timestamp(double t, char sep, char *buf, size_t size);

#endif
