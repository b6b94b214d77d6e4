/*
 * chat: the HTTP side of the "openai" note generator (private to
 * src/notes). One client talks to one OpenAI-compatible chat-completions
 * endpoint and turns a (system, user) pair of messages into one JSON object
 * that matches a given JSON Schema, retrying what is worth retrying:
 *
 * - 429, 408, 409, 5xx, timeouts and connection errors: exponential backoff
 *   with full jitter, honouring Retry-After, up to max_attempts, never past
 *   the caller's deadline;
 * - an answer that is not JSON or breaks the schema: asked again, up to
 *   CHAT_ANSWER_TRIES times in all;
 * - a 400 that says the server does not support response_format: asked
 *   again with the schema in the system message instead, and the client
 *   keeps asking that way for the rest of its life.
 *
 * Other 4xx, refusals and redirects are reported at once. The API key never
 * appears in a message or log line this file writes.
 */
#ifndef DIARIST_NOTES_CHAT_H
#define DIARIST_NOTES_CHAT_H

#include "notes/notes.h"

#include <jansson.h>
#include <stddef.h>

/* How many answers one chat_json call reads before it gives up on a model
 * that keeps producing invalid JSON (1 + 2 retries). */
#define CHAT_ANSWER_TRIES 3

typedef struct ChatClient ChatClient;

/* Copies what it needs from cfg (base_url, api_key, model, temperature,
 * max_tokens, request_timeout_s, max_attempts, backoff_*); cfg may go away
 * afterwards. The jitter generator is seeded with `seed`. */
int chat_client_create(const NoteConfig *cfg, uint64_t seed, ChatClient **out, char *msg,
                       size_t cap);
void chat_client_free(ChatClient *c);

/* Sends the two messages and fills *out with the answer parsed as a JSON
 * object that passes notes_validate_schema(answer, schema). schema_name
 * names the schema in response_format ([a-zA-Z0-9_-]). `deadline` is an
 * absolute di_now() time that no attempt or backoff sleep may pass.
 * Returns 0, or DI_EIO (transport, HTTP status, deadline), DI_EFORMAT
 * (refusal, answers that stay invalid), DI_ENOMEM, with a message. */
int chat_json(ChatClient *c, const char *system, const char *user, const char *schema_name,
              const json_t *schema, double deadline, json_t **out, char *msg, size_t cap);

/* 1 once the server has rejected response_format and the client has
 * switched to asking for JSON in the prompt. */
int chat_plain_json(ChatClient *c);

#endif
