/* A local AWS endpoint and metadata services for tests; see fake_aws.h.
 * One mutex guards the script, the counters and the record. */
#include "fake_aws.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUEUE 256
#define MAX_REQUESTS 1024
#define ROLE "diarist-test-role"

struct FakeAws {
    struct MHD_Daemon *daemon;
    char url[64];
    pthread_mutex_t lock;
    FakeAwsAnswer queue[MAX_QUEUE];
    int head, tail;
    int ttl_s;
    char *ecs_auth, *expired_token;
    char imds_token[64];
    int imds_fetches, ecs_fetches, token_puts, refused, token_serial;
    FakeAwsRequest *requests[MAX_REQUESTS];
    int count;
};

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void fake_aws_push(FakeAws *f, FakeAwsAnswer a) {
    pthread_mutex_lock(&f->lock);
    if (f->tail < MAX_QUEUE) {
        a.body = dup_or_null(a.body);
        a.header = dup_or_null(a.header);
        f->queue[f->tail++] = a;
    }
    pthread_mutex_unlock(&f->lock);
}

void fake_aws_set_ttl(FakeAws *f, int ttl_s) {
    pthread_mutex_lock(&f->lock);
    f->ttl_s = ttl_s;
    pthread_mutex_unlock(&f->lock);
}

static void set_string(FakeAws *f, char **field, const char *value) {
    pthread_mutex_lock(&f->lock);
    free(*field);
    *field = dup_or_null(value);
    pthread_mutex_unlock(&f->lock);
}

void fake_aws_set_ecs_auth(FakeAws *f, const char *auth) {
    set_string(f, &f->ecs_auth, auth);
}

void fake_aws_expire_token(FakeAws *f, const char *token) {
    set_string(f, &f->expired_token, token);
}

static int read_counter(FakeAws *f, const int *counter) {
    pthread_mutex_lock(&f->lock);
    int n = *counter;
    pthread_mutex_unlock(&f->lock);
    return n;
}

int fake_aws_count(FakeAws *f) {
    return read_counter(f, &f->count);
}
int fake_aws_imds_fetches(FakeAws *f) {
    return read_counter(f, &f->imds_fetches);
}
int fake_aws_ecs_fetches(FakeAws *f) {
    return read_counter(f, &f->ecs_fetches);
}
int fake_aws_imds_token_puts(FakeAws *f) {
    return read_counter(f, &f->token_puts);
}
int fake_aws_imds_refused(FakeAws *f) {
    return read_counter(f, &f->refused);
}

const FakeAwsRequest *fake_aws_request(FakeAws *f, int i) {
    pthread_mutex_lock(&f->lock);
    const FakeAwsRequest *r = i >= 0 && i < f->count ? f->requests[i] : NULL;
    pthread_mutex_unlock(&f->lock);
    return r;
}

/* ---- Answers ------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *body,
                             const char *header) {
    const char *text = body ? body : "";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "x-amzn-RequestId", "fake-request-id");
    if (header) {
        char name[128];
        const char *colon = strchr(header, ':');
        if (colon && (size_t)(colon - header) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(colon - header), header);
            const char *value = colon + 1;
            while (*value == ' ')
                value++;
            MHD_add_response_header(r, name, value);
        }
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Credentials JSON numbered n, with this prefix ("IMDS" or "ECS"). */
static enum MHD_Result credentials(struct MHD_Connection *conn, const char *kind, int n,
                                   int ttl_s) {
    char expires[32], body[512];
    time_t when = time(NULL) + ttl_s;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof body,
             "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"%sKEY%d\","
             "\"SecretAccessKey\":\"secret%d\",\"Token\":\"%s-token-%d\",\"Expiration\":\"%s\"}",
             kind, n, n, !strcmp(kind, "IMDS") ? "imds" : "ecs", n, expires);
    return reply(conn, 200, body, "Content-Type: application/json");
}

static enum MHD_Result imds(FakeAws *f, struct MHD_Connection *conn, const char *method,
                            const char *url) {
    pthread_mutex_lock(&f->lock);
    const char *token =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-aws-ec2-metadata-token");
#define BASE "/latest/meta-data/iam/security-credentials/"
    if (!strcmp(url, "/latest/api/token") && !strcmp(method, "PUT")) {
        const char *ttl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                      "X-aws-ec2-metadata-token-ttl-seconds");
        f->token_puts++;
        snprintf(f->imds_token, sizeof f->imds_token, "imds-session-%d", ++f->token_serial);
        char token_copy[64];
        memcpy(token_copy, f->imds_token, sizeof token_copy);
        pthread_mutex_unlock(&f->lock);
        return ttl ? reply(conn, 200, token_copy, NULL) : reply(conn, 400, "missing TTL", NULL);
    }
    if (!token || !f->imds_token[0] || strcmp(token, f->imds_token)) {
        f->refused++;
        pthread_mutex_unlock(&f->lock);
        return reply(conn, 401, "", NULL);
    }
    if (!strcmp(url, BASE)) {
        pthread_mutex_unlock(&f->lock);
        return reply(conn, 200, ROLE "\n", NULL);
    }
    if (!strcmp(url, BASE ROLE)) {
        int n = ++f->imds_fetches, ttl = f->ttl_s;
        pthread_mutex_unlock(&f->lock);
        return credentials(conn, "IMDS", n, ttl);
    }
    pthread_mutex_unlock(&f->lock);
#undef BASE
    return reply(conn, 404, "", NULL);
}

static enum MHD_Result ecs(FakeAws *f, struct MHD_Connection *conn) {
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&f->lock);
    int ok = !f->ecs_auth || (auth && !strcmp(auth, f->ecs_auth));
    int n = ok ? ++f->ecs_fetches : 0, ttl = f->ttl_s;
    pthread_mutex_unlock(&f->lock);
    if (!ok) return reply(conn, 403, "{\"message\":\"bad token\"}", NULL);
    return credentials(conn, "ECS", n, ttl);
}

static char *header_dup(struct MHD_Connection *conn, const char *name) {
    return dup_or_null(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name));
}

static enum MHD_Result service(FakeAws *f, struct MHD_Connection *conn, const char *method,
                               const char *url, size_t body_len) {
    FakeAwsRequest *r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    r->authorization = header_dup(conn, "Authorization");
    r->security_token = header_dup(conn, "X-Amz-Security-Token");
    r->content_sha256 = header_dup(conn, "x-amz-content-sha256");
    r->content_type = header_dup(conn, "Content-Type");
    r->host = header_dup(conn, "Host");
    r->body_len = body_len;
    pthread_mutex_lock(&f->lock);
    int expired =
        f->expired_token && r->security_token && !strcmp(f->expired_token, r->security_token);
    if (f->count < MAX_REQUESTS) f->requests[f->count++] = r;
    FakeAwsAnswer a = {.status = 200, .body = NULL, .header = NULL};
    int scripted = !expired && f->head < f->tail;
    if (scripted) a = f->queue[f->head++];
    pthread_mutex_unlock(&f->lock);
    enum MHD_Result ret;
    if (expired)
        ret = reply(conn, 400,
                    "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\","
                    "\"message\":\"The security token included in the request is expired\"}",
                    NULL);
    else
        ret = reply(conn, a.status, scripted ? a.body : "{}", a.header);
    if (scripted) {
        free((char *)a.body);
        free((char *)a.header);
    }
    return ret;
}

typedef struct {
    size_t len;
} Upload;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
    (void)version, (void)data;
    FakeAws *f = cls;
    Upload *up = *con_cls;
    if (!up) {
        if (!(up = calloc(1, sizeof *up))) return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*data_size) {
        up->len += *data_size;
        *data_size = 0;
        return MHD_YES;
    }
    if (!strncmp(url, "/latest/", 8)) return imds(f, conn, method, url);
    if (!strcmp(url, "/ecs-credentials")) return ecs(f, conn);
    return service(f, conn, method, url, up->len);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
    (void)cls, (void)conn, (void)code;
    free(*con_cls);
    *con_cls = NULL;
}

int fake_aws_start(FakeAws **out) {
    *out = NULL;
    FakeAws *f = calloc(1, sizeof *f);
    if (!f) return -1;
    pthread_mutex_init(&f->lock, NULL);
    f->ttl_s = 3600;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(0)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                                 NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, f,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        f->daemon ? MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) {
        fake_aws_stop(f);
        return -1;
    }
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u", (unsigned)info->port);
    *out = f;
    return 0;
}

const char *fake_aws_url(const FakeAws *f) {
    return f->url;
}

void fake_aws_stop(FakeAws *f) {
    if (!f) return;
    if (f->daemon) MHD_stop_daemon(f->daemon);
    for (int i = f->head; i < f->tail; i++) {
        free((char *)f->queue[i].body);
        free((char *)f->queue[i].header);
    }
    for (int i = 0; i < f->count; i++) {
        FakeAwsRequest *r = f->requests[i];
        free(r->authorization);
        free(r->security_token);
        free(r->content_sha256);
        free(r->content_type);
        free(r->host);
        free(r);
    }
    free(f->ecs_auth);
    free(f->expired_token);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
