/*
 * What aws.c (requests, endpoints, retries) and credentials.c (the chain
 * and its cache) share inside src/aws/. Nothing outside src/aws includes
 * this file: aws.h is the interface.
 */
#ifndef DIARIST_AWS_INTERNAL_H
#define DIARIST_AWS_INTERNAL_H

#include "aws/aws.h"
#include "core/core.h"

#include <pthread.h>

/* The credential chain's settings, read from the environment once by
 * aws_open, and the cached answer. Strings are owned; NULL when unset. */
typedef struct {
    char *env_access_key, *env_secret_key, *env_session_token;
    char *profile_file, *profile_name;
    char *ecs_url;       /* the full container-credentials URL, if configured */
    char *ecs_auth;      /* AWS_CONTAINER_AUTHORIZATION_TOKEN */
    char *ecs_auth_file; /* AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, read per fetch */
    char *imds_endpoint; /* without a trailing '/' */
    int imds_disabled;
    pthread_mutex_t lock; /* guards have and cached: an Aws is shared by threads */
    int lock_ready;
    int have;
    AwsCredentials cached;
} AwsCredChain;

struct Aws {
    char region[64];
    char *endpoint_s3, *endpoint_sqs, *endpoint_dynamodb; /* per-service overrides */
    char *endpoint_all;                                   /* AWS_ENDPOINT_URL */
    double retry_base_s, retry_max_s;
    pthread_mutex_t rng_lock;
    DiRng rng;
    AwsCredChain creds;
};

/* Reads the chain's settings from the environment; frees them. */
int aws_cred_chain_init(AwsCredChain *c, char *msg, size_t cap);
void aws_cred_chain_free(AwsCredChain *c);

/* getenv with an empty value counting as unset. */
const char *aws_env(const char *name);
/* strdup of aws_env(name), NULL when unset; *oom set on allocation failure. */
char *aws_env_dup(const char *name, int *oom);

/* One unsigned HTTP exchange for the credential sources: the metadata
 * services answer small bodies fast or not at all. headers ends with NULL.
 * 0 with *status and *body (caller frees) filled, or DI_EIO. */
int aws_plain_http(const char *method, const char *url, const char *const *headers, long timeout_ms,
                   long *status, char **body, char *msg, size_t cap);

/* curl_global_init, once per process. 0 or DI_EINTERNAL. */
int aws_curl_init(char *msg, size_t cap);

#endif
