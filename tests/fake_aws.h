/*
 * fake_aws: a local stand-in for an AWS endpoint and for the two metadata
 * services credentials come from, for tests of src/aws.
 *
 * A real HTTP server (libmicrohttpd) on 127.0.0.1 at an ephemeral port:
 *
 * - PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/
 *   and .../ROLE speak EC2 instance metadata (IMDSv2): a GET without the
 *   token the PUT handed out gets 401;
 * - GET /ecs-credentials speaks the ECS container credentials endpoint: it
 *   wants the Authorization header set by fake_aws_set_ecs_auth (403 else);
 * - anything else is a service request: recorded, then answered from a
 *   script (a queue of answers consumed one per request, then 200 "{}"),
 *   except that a request whose X-Amz-Security-Token is the one passed to
 *   fake_aws_expire_token gets 400 ExpiredTokenException.
 *
 * Credentials handed out are numbered: the n-th fetch gives access key
 * "IMDSKEYn" or "ECSKEYn" and session token "imds-token-n" / "ecs-token-n",
 * expiring ttl_s seconds after the fetch (fake_aws_set_ttl; default 3600).
 * All functions are thread-safe.
 */
#ifndef DIARIST_FAKE_AWS_H
#define DIARIST_FAKE_AWS_H

#include <stddef.h>

typedef struct {
    int status;
    const char *body;   /* NULL: empty */
    const char *header; /* one extra "Name: value" header, or NULL */
} FakeAwsAnswer;

typedef struct {
    char method[16];
    char path[512];
    char *authorization; /* NULL when absent, as the other header fields */
    char *security_token;
    char *content_sha256;
    char *content_type;
    char *host;
    size_t body_len;
} FakeAwsRequest;

typedef struct FakeAws FakeAws;

/* 0 or -1. */
int fake_aws_start(FakeAws **out);
/* "http://127.0.0.1:PORT"; valid until fake_aws_stop. */
const char *fake_aws_url(const FakeAws *f);
void fake_aws_push(FakeAws *f, FakeAwsAnswer a); /* strings copied; up to 256 */
void fake_aws_set_ttl(FakeAws *f, int ttl_s);
void fake_aws_set_ecs_auth(FakeAws *f, const char *auth);
void fake_aws_expire_token(FakeAws *f, const char *token);
/* Service requests recorded so far; request i (NULL when out of range). */
int fake_aws_count(FakeAws *f);
const FakeAwsRequest *fake_aws_request(FakeAws *f, int i);
/* Credential fetches served (IMDS role reads, ECS reads), token PUTs, and
 * metadata GETs refused for lack of a token. */
int fake_aws_imds_fetches(FakeAws *f);
int fake_aws_ecs_fetches(FakeAws *f);
int fake_aws_imds_token_puts(FakeAws *f);
int fake_aws_imds_refused(FakeAws *f);
void fake_aws_stop(FakeAws *f); /* NULL is fine */

#endif
