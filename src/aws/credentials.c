/* The credential chain and its cache; see aws.h.
 *
 * Each source answers in one of three ways: credentials (0), "not here"
 * (DI_ENOTFOUND: not configured, no such profile), or a failure (any other
 * code). The chain takes the first that answers with credentials and, when
 * none does, names what each said, so a misconfigured fleet says why. */
#include "aws/internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Refresh this long before credentials expire, so a request signed just
 * before the refresh point still reaches AWS in time. */
#define REFRESH_MARGIN_S 300.0
/* The metadata services are on the local network: a slow one is a dead one. */
#define IMDS_TIMEOUT_MS 2000L
#define ECS_TIMEOUT_MS 5000L
#define IMDS_TOKEN_TTL "21600"
#define MAX_METADATA_BYTES (64u << 10)

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- Settings ------------------------------------------------------------ */

void aws_cred_chain_free(AwsCredChain *c) {
    free(c->env_access_key);
    free(c->env_secret_key);
    free(c->env_session_token);
    free(c->profile_file);
    free(c->profile_name);
    free(c->ecs_url);
    free(c->ecs_auth);
    free(c->ecs_auth_file);
    free(c->imds_endpoint);
    if (c->lock_ready) pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof *c);
}

static char *ecs_url(int *oom) {
    const char *rel = aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    char *url = NULL;
    if (rel) {
        /* The relative form always means the ECS agent's fixed address. */
        if (asprintf(&url, "http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel) < 0) {
            url = NULL;
            *oom = 1;
        }
        return url;
    }
    return aws_env_dup("AWS_CONTAINER_CREDENTIALS_FULL_URI", oom);
}

static char *default_credentials_file(int *oom) {
    const char *home = aws_env("HOME");
    char *path = NULL;
    if (home && asprintf(&path, "%s/.aws/credentials", home) < 0) {
        path = NULL;
        *oom = 1;
    }
    return path;
}

int aws_cred_chain_init(AwsCredChain *c, char *msg, size_t cap) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->lock_ready = 1;
    int oom = 0;
    c->env_access_key = aws_env_dup("AWS_ACCESS_KEY_ID", &oom);
    c->env_secret_key = aws_env_dup("AWS_SECRET_ACCESS_KEY", &oom);
    c->env_session_token = aws_env_dup("AWS_SESSION_TOKEN", &oom);
    c->profile_file = aws_env_dup("AWS_SHARED_CREDENTIALS_FILE", &oom);
    if (!c->profile_file) c->profile_file = default_credentials_file(&oom);
    c->profile_name = aws_env_dup("AWS_PROFILE", &oom);
    if (!c->profile_name && !oom && !(c->profile_name = strdup("default"))) oom = 1;
    c->ecs_url = ecs_url(&oom);
    c->ecs_auth = aws_env_dup("AWS_CONTAINER_AUTHORIZATION_TOKEN", &oom);
    c->ecs_auth_file = aws_env_dup("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &oom);
    const char *ep = aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    c->imds_endpoint = strdup(ep ? ep : "http://169.254.169.254");
    if (!c->imds_endpoint) oom = 1;
    for (size_t n = c->imds_endpoint ? strlen(c->imds_endpoint) : 0;
         n > 8 && c->imds_endpoint[n - 1] == '/'; n--)
        c->imds_endpoint[n - 1] = 0;
    const char *off = aws_env("AWS_EC2_METADATA_DISABLED");
    c->imds_disabled = off && !strcasecmp(off, "true");
    if (oom) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    return 0;
}

/* ---- Plain HTTP for the metadata services ------------------------------- */

typedef struct {
    char *data;
    size_t len;
} Buf;

static size_t on_data(char *data, size_t size, size_t n, void *user) {
    Buf *b = user;
    size_t add = size * n;
    if (b->len + add > MAX_METADATA_BYTES) return 0;
    char *grown = realloc(b->data, b->len + add + 1);
    if (!grown) return 0;
    memcpy(grown + b->len, data, add);
    b->data = grown;
    b->len += add;
    b->data[b->len] = 0;
    return add;
}

int aws_plain_http(const char *method, const char *url, const char *const *headers, long timeout_ms,
                   long *status, char **body, char *msg, size_t cap) {
    *status = 0;
    *body = NULL;
    int rc = aws_curl_init(msg, cap);
    if (rc) return rc;
    CURL *h = curl_easy_init();
    struct curl_slist *list = NULL;
    int oom = !h;
    for (size_t i = 0; !oom && headers && headers[i]; i++) {
        struct curl_slist *next = curl_slist_append(list, headers[i]);
        if (!next)
            oom = 1;
        else
            list = next;
    }
    if (oom) {
        curl_easy_cleanup(h);
        curl_slist_free_all(list);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    }
    Buf b = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Credentials must come from the metadata service itself, never from
     * whatever a proxy in the environment would answer. */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    CURLcode code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(list);
    if (code != CURLE_OK) {
        free(b.data);
        return di_fail(msg, cap, DI_EIO, "%s", errbuf[0] ? errbuf : curl_easy_strerror(code));
    }
    *body = b.data ? b.data : strdup("");
    return *body ? 0 : di_fail(msg, cap, DI_ENOMEM, "out of memory");
}

/* ---- Parsing ------------------------------------------------------------- */

/* ISO 8601 UTC time ("2015-08-30T12:36:00Z", fractions and offsets
 * allowed) as Unix seconds; -1 when unreadable. */
static double parse_iso8601(const char *s) {
    struct tm tm = {0};
    int used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    const char *p = s + used;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++) {
        }
    int oh = 0, om = 0;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2) {
        int off = (oh * 60 + om) * 60;
        t -= *p == '+' ? off : -off;
    }
    return (double)t;
}

static int copy_field(char *dst, size_t cap, const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) return -1;
    memcpy(dst, src ? src : "", n + 1);
    return 0;
}

/* Fills out from the JSON both metadata services answer with. */
static int parse_credentials_json(const char *text, const char *source, AwsCredentials *out,
                                  char *msg, size_t cap) {
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!json_is_object(root)) {
        json_decref(root);
        return di_fail(msg, cap, DI_EFORMAT, "the answer is not a JSON object");
    }
    const char *code = json_string_value(json_object_get(root, "Code"));
    const char *ak = json_string_value(json_object_get(root, "AccessKeyId"));
    const char *sk = json_string_value(json_object_get(root, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(root, "Token"));
    const char *exp = json_string_value(json_object_get(root, "Expiration"));
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (code && strcmp(code, "Success"))
        rc = di_fail(msg, cap, DI_EIO, "the service says %s", code);
    else if (!ak || !sk || !ak[0] || !sk[0])
        rc = di_fail(msg, cap, DI_EFORMAT, "the answer lacks AccessKeyId or SecretAccessKey");
    else if (copy_field(out->access_key, sizeof out->access_key, ak) ||
             copy_field(out->secret_key, sizeof out->secret_key, sk) ||
             copy_field(out->session_token, sizeof out->session_token, token))
        rc = di_fail(msg, cap, DI_EFORMAT, "a credential field is too long");
    else if (exp && (out->expires_at = parse_iso8601(exp)) < 0)
        rc = di_fail(msg, cap, DI_EFORMAT, "unreadable Expiration \"%s\"", exp);
    if (!rc) snprintf(out->source, sizeof out->source, "%s", source);
    json_decref(root);
    return rc;
}

/* ---- Sources ------------------------------------------------------------- */

static int from_environment(const AwsCredChain *c, AwsCredentials *out, char *msg, size_t cap) {
    if (!c->env_access_key || !c->env_secret_key)
        return di_fail(msg, cap, DI_ENOTFOUND, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY unset");
    memset(out, 0, sizeof *out);
    if (copy_field(out->access_key, sizeof out->access_key, c->env_access_key) ||
        copy_field(out->secret_key, sizeof out->secret_key, c->env_secret_key) ||
        copy_field(out->session_token, sizeof out->session_token, c->env_session_token))
        return di_fail(msg, cap, DI_EINVAL, "a credential variable is too long");
    snprintf(out->source, sizeof out->source, "environment");
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* Is this "[name]" (or the config file's "[profile name]") the profile? */
static int is_section(char *line, const char *profile) {
    size_t n = strlen(line);
    if (n < 2 || line[0] != '[' || line[n - 1] != ']') return -1;
    line[n - 1] = 0;
    char *name = trim(line + 1);
    if (!strncmp(name, "profile ", 8)) name = trim(name + 8);
    return !strcmp(name, profile);
}

/* Reads the profile's keys from an INI file, as the SDKs do. */
static int from_profile(const AwsCredChain *c, AwsCredentials *out, char *msg, size_t cap) {
    if (!c->profile_file) return di_fail(msg, cap, DI_ENOTFOUND, "no HOME for ~/.aws/credentials");
    FILE *f = fopen(c->profile_file, "r");
    if (!f)
        return di_fail(msg, cap, errno == ENOENT ? DI_ENOTFOUND : DI_EIO, "%s: %s", c->profile_file,
                       strerror(errno));
    memset(out, 0, sizeof *out);
    char line[8192];
    int in_profile = 0, found = 0, too_long = 0;
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        int section = is_section(s, c->profile_name);
        if (section >= 0) {
            in_profile = section;
            found |= section;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in_profile || !eq) continue;
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        if (!strcasecmp(key, "aws_access_key_id"))
            too_long |= copy_field(out->access_key, sizeof out->access_key, value);
        else if (!strcasecmp(key, "aws_secret_access_key"))
            too_long |= copy_field(out->secret_key, sizeof out->secret_key, value);
        else if (!strcasecmp(key, "aws_session_token"))
            too_long |= copy_field(out->session_token, sizeof out->session_token, value);
    }
    fclose(f);
    if (!found)
        return di_fail(msg, cap, DI_ENOTFOUND, "%s: no profile [%s]", c->profile_file,
                       c->profile_name);
    if (too_long) return di_fail(msg, cap, DI_EFORMAT, "%s: a key is too long", c->profile_file);
    if (!out->access_key[0] || !out->secret_key[0])
        return di_fail(msg, cap, DI_EFORMAT,
                       "%s: profile [%s] lacks aws_access_key_id or "
                       "aws_secret_access_key",
                       c->profile_file, c->profile_name);
    snprintf(out->source, sizeof out->source, "profile");
    return 0;
}

/* Plain http is only trusted on the ECS agent's addresses and loopback, as
 * the SDKs insist: anything else could be an attacker on the network. */
static int ecs_host_allowed(const char *url) {
    if (!strncmp(url, "https://", 8)) return 1;
    if (strncmp(url, "http://", 7)) return 0;
    const char *host = url + 7;
    size_t n = strcspn(host, ":/?#");
    static const char *const allowed[] = {"169.254.170.2", "169.254.170.23", "localhost", "[::1]",
                                          "[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strlen(allowed[i]) == n && !strncmp(host, allowed[i], n)) return 1;
    if (host[0] == '[') return !strncmp(host, "[::1]", 5);
    return !strncmp(host, "127.", 4);
}

/* The token from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read each time:
 * the agent rotates it), else AWS_CONTAINER_AUTHORIZATION_TOKEN. */
static int ecs_token(const AwsCredChain *c, char *out, size_t cap, char *msg, size_t mcap) {
    out[0] = 0;
    if (!c->ecs_auth_file) return copy_field(out, cap, c->ecs_auth) ? DI_EINVAL : 0;
    FILE *f = fopen(c->ecs_auth_file, "r");
    if (!f) return di_fail(msg, mcap, DI_EIO, "%s: %s", c->ecs_auth_file, strerror(errno));
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = 0;
    char *t = trim(out);
    memmove(out, t, strlen(t) + 1);
    return 0;
}

static int from_ecs(const AwsCredChain *c, AwsCredentials *out, char *msg, size_t cap) {
    if (!c->ecs_url) return di_fail(msg, cap, DI_ENOTFOUND, "not configured");
    if (!ecs_host_allowed(c->ecs_url))
        return di_fail(msg, cap, DI_EINVAL, "%s: plain http only to loopback or the ECS agent",
                       c->ecs_url);
    char token[4096], auth[4200];
    int rc = ecs_token(c, token, sizeof token, msg, cap);
    if (rc) return rc;
    snprintf(auth, sizeof auth, "Authorization: %s", token);
    const char *headers[] = {"Accept: application/json", token[0] ? auth : NULL, NULL};
    long status;
    char *body;
    rc = aws_plain_http("GET", c->ecs_url, headers, ECS_TIMEOUT_MS, &status, &body, msg, cap);
    if (rc) return rc;
    if (status != 200)
        rc = di_fail(msg, cap, DI_EIO, "%s answered HTTP %ld", c->ecs_url, status);
    else
        rc = parse_credentials_json(body, "ecs", out, msg, cap);
    free(body);
    return rc;
}

/* IMDSv2: a session token first (PUT), then every read carries it. An old
 * metadata server without tokens (404/405 on the PUT) is read without. */
static int imds_session(const AwsCredChain *c, char *header, size_t cap, char *msg, size_t mcap) {
    char url[512];
    snprintf(url, sizeof url, "%s/latest/api/token", c->imds_endpoint);
    const char *headers[] = {"X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL, NULL};
    long status;
    char *body;
    header[0] = 0;
    int rc = aws_plain_http("PUT", url, headers, IMDS_TIMEOUT_MS, &status, &body, msg, mcap);
    if (rc) return rc;
    if (status == 200 && body[0])
        snprintf(header, cap, "X-aws-ec2-metadata-token: %s", trim(body));
    else if (status != 404 && status != 405)
        rc = di_fail(msg, mcap, DI_EIO, "%s answered HTTP %ld", url, status);
    free(body);
    return rc;
}

static int imds_get(const AwsCredChain *c, const char *path, const char *token_header, char **body,
                    char *msg, size_t cap) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->imds_endpoint, path);
    const char *headers[] = {token_header[0] ? token_header : NULL, NULL};
    long status;
    int rc = aws_plain_http("GET", url, headers, IMDS_TIMEOUT_MS, &status, body, msg, cap);
    if (!rc && status != 200) {
        free(*body);
        *body = NULL;
        rc = di_fail(msg, cap, status == 404 ? DI_ENOTFOUND : DI_EIO, "%s answered HTTP %ld", url,
                     status);
    }
    return rc;
}

static int from_imds(const AwsCredChain *c, AwsCredentials *out, char *msg, size_t cap) {
    if (c->imds_disabled) return di_fail(msg, cap, DI_ENOTFOUND, "AWS_EC2_METADATA_DISABLED");
    char token[1200], path[512];
    int rc = imds_session(c, token, sizeof token, msg, cap);
    char *roles = NULL, *body = NULL;
    static const char base[] = "/latest/meta-data/iam/security-credentials/";
    if (!rc) rc = imds_get(c, base, token, &roles, msg, cap);
    if (!rc) {
        /* The first role listed is the instance profile's (there is one). */
        char *role = trim(roles);
        role[strcspn(role, "\r\n")] = 0;
        if (!role[0] || strchr(role, '/') || strlen(role) > 256)
            rc = di_fail(msg, cap, DI_ENOTFOUND, "no IAM role attached to this instance");
        else
            snprintf(path, sizeof path, "%s%s", base, role);
    }
    if (!rc) rc = imds_get(c, path, token, &body, msg, cap);
    if (!rc) rc = parse_credentials_json(body, "imds", out, msg, cap);
    free(roles);
    free(body);
    return rc;
}

/* ---- The chain and its cache --------------------------------------------- */

typedef int (*Source)(const AwsCredChain *, AwsCredentials *, char *, size_t);

static int fetch_chain(const AwsCredChain *c, AwsCredentials *out, char *msg, size_t cap) {
    static const struct {
        const char *name;
        Source fn;
    } sources[] = {{"environment", from_environment},
                   {"profile", from_profile},
                   {"ecs", from_ecs},
                   {"imds", from_imds}};
    char tried[1536] = "", why[400];
    size_t used = 0;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        why[0] = 0;
        if (sources[i].fn(c, out, why, sizeof why) == 0) return 0;
        int n = snprintf(tried + used, sizeof tried - used, "%s%s: %s", used ? "; " : "",
                         sources[i].name, why);
        if (n > 0) used = used + (size_t)n < sizeof tried ? used + (size_t)n : sizeof tried - 1;
    }
    return di_fail(msg, cap, DI_ENOTFOUND, "no AWS credentials (%s)", tried);
}

static int fresh(const AwsCredentials *cred, double now) {
    return cred->expires_at == 0 || now < cred->expires_at - REFRESH_MARGIN_S;
}

int aws_credentials(Aws *aws, AwsCredentials *out, char *msg, size_t cap) {
    if (!aws || !out) return di_fail(msg, cap, DI_EINVAL, "aws_credentials: missing argument");
    AwsCredChain *c = &aws->creds;
    /* Fetching under the lock means one fetch for many waiting threads,
     * not a stampede on the metadata service. */
    pthread_mutex_lock(&c->lock);
    double now = wall_now();
    int rc = 0;
    if (!c->have || !fresh(&c->cached, now)) {
        AwsCredentials got;
        rc = fetch_chain(c, &got, msg, cap);
        if (rc == 0) {
            c->cached = got;
            c->have = 1;
            di_log("debug", "aws: credentials from %s", got.source);
        } else if (c->have && now < c->cached.expires_at) {
            /* Still valid for a while: better than failing every request. */
            di_log("warn", "aws: refreshing credentials failed, using the current ones: %s", msg);
            rc = 0;
        }
        memset(&got, 0, sizeof got);
    }
    if (rc == 0) *out = c->cached;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void aws_credentials_invalidate(Aws *aws) {
    if (!aws) return;
    pthread_mutex_lock(&aws->creds.lock);
    aws->creds.have = 0;
    pthread_mutex_unlock(&aws->creds.lock);
}
