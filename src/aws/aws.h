/*
 * aws: talking to AWS, or to any server that speaks its protocols (MinIO,
 * LocalStack, the npm emulators the tests use). No SDK: libcurl signs each
 * request with SigV4 (CURLOPT_AWS_SIGV4); this module adds what the SDKs
 * add around that:
 *
 * - the region: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1;
 * - credentials by the standard chain, first that answers: the environment
 *   (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared
 *   credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials,
 *   profile AWS_PROFILE, else "default"), the ECS container endpoint
 *   (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI against 169.254.170.2, or
 *   AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN),
 *   EC2 instance metadata with an IMDSv2 token (AWS_EC2_METADATA_SERVICE_ENDPOINT
 *   overrides http://169.254.169.254; AWS_EC2_METADATA_DISABLED=true skips it).
 *   Temporary credentials are cached and refreshed before they expire; a
 *   session token is sent as X-Amz-Security-Token;
 * - endpoints per service: the seed's S3_ENDPOINT, SQS_ENDPOINT and
 *   DYNAMODB_ENDPOINT, else AWS_ENDPOINT_URL_S3 / _SQS / _DYNAMODB, else
 *   AWS_ENDPOINT_URL, else the service's public endpoint in the region;
 * - retries as the SDKs do them: connection errors, timeouts, HTTP 5xx, 429
 *   and the throttling error codes (Throttling, ThrottlingException,
 *   SlowDown, RequestLimitExceeded, ProvisionedThroughputExceededException,
 *   TooManyRequestsException, RequestThrottled...) are tried again after an
 *   exponential backoff with full jitter; an expired-credentials answer
 *   (ExpiredToken, ExpiredTokenException, RequestExpired with a session
 *   token, TokenRefreshRequired) drops the cached credentials and tries once
 *   more with fresh ones. DIARIST_AWS_RETRY_BASE_MS sets the base delay
 *   (default 100 ms; throttling answers wait 5x longer; no wait is over
 *   20 s), so tests can keep retries fast.
 *
 * Used by store/s3.c, queue/sqs.c, meta/dynamodb.c and `diarist init-aws`.
 *
 * Ownership: aws_open gives an Aws freed by aws_close (NULL is fine); one
 * Aws may be used by several threads at once. aws_request fills a
 * caller-owned AwsResponse whose body it allocates; aws_response_free
 * releases it.
 */
#ifndef DIARIST_AWS_H
#define DIARIST_AWS_H

#include <stddef.h>
#include <stdint.h>

typedef struct Aws Aws;

/* Reads the region, endpoints and credential chain settings from the
 * environment. Credentials are fetched on first use, not here, so a
 * process starts even while the metadata service is slow. */
int aws_open(Aws **out, char *msg, size_t cap);
void aws_close(Aws *aws);

/* The region requests are signed for. */
const char *aws_region(const Aws *aws);

/* The base URL for a service ("s3", "sqs", "dynamodb"), without a trailing
 * '/': an override from the environment, else https://SERVICE.REGION.amazonaws.com.
 * *custom is set to 1 when an override was used (S3 then defaults to
 * path-style addressing). DI_ERANGE when cap is too small. */
int aws_endpoint(const Aws *aws, const char *service, char *out, size_t cap, int *custom);

typedef struct {
    char access_key[256];
    char secret_key[256];
    char session_token[4096]; /* "" when none */
    double expires_at;        /* Unix seconds; 0 = does not expire */
    char source[32];          /* "environment", "profile", "ecs", "imds" */
} AwsCredentials;

/* The current credentials (cached; refreshed five minutes before they
 * expire). DI_ENOTFOUND with every source tried named when none answers. */
int aws_credentials(Aws *aws, AwsCredentials *out, char *msg, size_t cap);
/* Forgets cached credentials, so the next request fetches new ones. */
void aws_credentials_invalidate(Aws *aws);

/* One request. The body, if any, is in memory (S3 multipart parts are at
 * most a few MiB); a response body can be streamed to on_data instead of
 * collected. Headers are "Name: value" strings ending with NULL. For S3,
 * x-amz-content-sha256 is added (the body's SHA-256) unless given.
 * So that curl 7.88's signature matches AWS's canonical request, the URL
 * is sent normalised (path segments and query strictly percent-encoded,
 * '+' kept as a plus, query sorted, a bare "name" sent as "name="), a
 * header given twice is sent once with its values comma-joined, a header
 * without a value is dropped, and a non-POST body without Content-Type is
 * sent as binary/octet-stream (S3's default). */
typedef struct {
    const char *method;         /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *service;        /* signing name: "s3", "sqs", "dynamodb" */
    const char *url;            /* whole URL, query included, already encoded */
    const char *const *headers; /* may be NULL */
    const void *body;
    size_t body_len;
    /* Called with each piece of a 2xx response body instead of collecting
     * it; returns 0 to go on, non-zero to abort the transfer. May be NULL.
     * A retried request calls on_reset first (may be NULL) so the sink can
     * start over. */
    int (*on_data)(void *ud, const void *data, size_t n);
    void (*on_reset)(void *ud);
    void *ud;
    int max_attempts; /* 0: AWS_DEFAULT_ATTEMPTS */
    long timeout_ms;  /* whole request; 0: AWS_DEFAULT_TIMEOUT_MS (long polls set more) */
} AwsRequest;

#define AWS_DEFAULT_ATTEMPTS 5
#define AWS_DEFAULT_TIMEOUT_MS 60000

typedef struct {
    long status;            /* HTTP status of the last attempt */
    char *body;             /* collected body, 0-terminated (NULL if streamed/none) */
    size_t body_len;
    char request_id[128];   /* x-amz-request-id / x-amzn-RequestId */
    char error_code[128];   /* the AWS error code of a non-2xx answer: XML <Code>,
                               JSON __type (after any '#'), or x-amzn-query-error */
    char error_message[512];
    char etag[256];         /* ETag header (S3), quotes kept */
    int attempts;           /* how many were made */
    char *headers;          /* the last answer's raw header lines (for aws_response_header) */
    size_t headers_len;
} AwsResponse;

/* Sends the request, retrying as described above. 0 when an answer came
 * (any status: check resp->status and resp->error_code); a negative code
 * when none did after every attempt (DI_EIO, message names the host and
 * curl's reason), or when no credentials could be found. */
int aws_request(Aws *aws, const AwsRequest *req, AwsResponse *resp, char *msg, size_t cap);
void aws_response_free(AwsResponse *resp);

/* A header of the last answer, case-insensitive name, first match, copied
 * into out without surrounding spaces. 0, or DI_ENOTFOUND when absent. */
int aws_response_header(const AwsResponse *resp, const char *name, char *out, size_t cap);

/* RFC 3986 percent-encoding as SigV4 wants it (unreserved kept; '/' kept
 * when keep_slash, for S3 keys in paths). DI_ERANGE when out is too small. */
int aws_uri_encode(const char *in, int keep_slash, char *out, size_t cap);

/* The hex SHA-256 of a buffer (S3's x-amz-content-sha256). */
void aws_sha256_hex(const void *data, size_t n, char hex[65]);

/* ---- Provisioning (provision.c, for `diarist init-aws`) ---------------- */

/* Told of each resource: what ("bucket", "queue", "table"), its name, and
 * how it went ("created", "already there", ...). */
typedef void (*AwsProvisionReport)(void *ud, const char *what, const char *name, const char *how);

typedef struct {
    char bucket[256];              /* AUDIO_BUCKET_NAME, default audio-files */
    char queue[256];               /* last segment of PROCESSING_QUEUE_URL, default
                                      audio-processing-queue; its DLQ is NAME-dlq */
    char transcriptions_table[256]; /* TRANSCRIPTION_TABLE, default AudioTranscriptions */
    char notes_table[256];         /* NOTES_TABLE, default DiaryNotes */
    int max_receives;              /* attempts before a job is dead-lettered, 5 (the
                                      worker decides; the redrive policy is one more) */
    int visibility_s;              /* the queue's default visibility timeout, 300 */
    char queue_url[2048];          /* out: the work queue's URL */
    AwsProvisionReport report;     /* may be NULL */
    void *report_ud;
} AwsProvision;

/* The seed's names, from the environment as the seed reads them. */
void aws_provision_defaults(AwsProvision *p);
/* Creates what is missing: the bucket, the dead-letter queue, the work
 * queue with its redrive policy, both tables (on-demand, hash key job_id),
 * waiting until the tables are ACTIVE. Idempotent. */
int aws_provision(Aws *aws, AwsProvision *p, char *msg, size_t cap);

#endif
