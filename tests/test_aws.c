/* src/aws against real HTTP servers on loopback (fake_aws.c): SigV4 as
 * curl produces it compared with AWS's published signature test vectors,
 * the credential chain, refresh, retries, error parsing and endpoints.
 * DIARIST_AWS_RETRY_BASE_MS=1 keeps backoffs short. */
#include "testutil.h"

#include "aws/aws.h"
#include "aws/internal.h"
#include "core/core.h"
#include "fake_aws.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VECTOR_AK "AKIDEXAMPLE"
#define VECTOR_SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define VECTOR_DATE "20150830T123600Z"

/* Every variable src/aws reads, so nothing from the runner's environment
 * (a developer's real AWS profile, an EC2 host) leaks into a test. */
static const char *const aws_vars[] = {"AWS_REGION",
                                       "AWS_DEFAULT_REGION",
                                       "AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                       "AWS_EC2_METADATA_DISABLED",
                                       "S3_ENDPOINT",
                                       "SQS_ENDPOINT",
                                       "DYNAMODB_ENDPOINT",
                                       "AWS_ENDPOINT_URL",
                                       "AWS_ENDPOINT_URL_S3",
                                       "AWS_ENDPOINT_URL_SQS",
                                       "AWS_ENDPOINT_URL_DYNAMODB",
                                       "http_proxy",
                                       "HTTP_PROXY",
                                       "https_proxy",
                                       "HTTPS_PROXY",
                                       "ALL_PROXY",
                                       "all_proxy",
                                       NULL};

typedef struct {
    FakeAws *fake;
    Aws *aws;
    char msg[1024];
} Fixture;

static int setup(void **state) {
    for (int i = 0; aws_vars[i]; i++)
        unsetenv(aws_vars[i]);
    setenv("AWS_SHARED_CREDENTIALS_FILE", tu_tmp("no-such-credentials"), 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("DIARIST_AWS_RETRY_BASE_MS", "1", 1);
    Fixture *fx = calloc(1, sizeof *fx);
    if (!fx || fake_aws_start(&fx->fake) != 0) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    Fixture *fx = *state;
    aws_close(fx->aws);
    fake_aws_stop(fx->fake);
    free(fx);
    return 0;
}

static void open_aws(Fixture *fx) {
    aws_close(fx->aws);
    fx->aws = NULL;
    int rc = aws_open(&fx->aws, fx->msg, sizeof fx->msg);
    if (rc) fprintf(stderr, "aws_open: %s\n", fx->msg);
    assert_int_equal(rc, 0);
}

static void env_keys(const char *ak, const char *sk, const char *token) {
    setenv("AWS_ACCESS_KEY_ID", ak, 1);
    setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
    if (token)
        setenv("AWS_SESSION_TOKEN", token, 1);
    else
        unsetenv("AWS_SESSION_TOKEN");
}

/* A request to the fake: path may carry a query. */
static int send_to_fake(Fixture *fx, const char *method, const char *service, const char *path,
                        const char *const *headers, const char *body, int max_attempts,
                        AwsResponse *resp) {
    char url[2048];
    snprintf(url, sizeof url, "%s%s", fake_aws_url(fx->fake), path);
    AwsRequest req = {.method = method,
                      .service = service,
                      .url = url,
                      .headers = headers,
                      .body = body,
                      .body_len = body ? strlen(body) : 0,
                      .max_attempts = max_attempts,
                      .timeout_ms = 5000};
    return aws_request(fx->aws, &req, resp, fx->msg, sizeof fx->msg);
}

/* ---- SigV4 test vectors -------------------------------------------------- */

typedef struct {
    const char *name;
    const char *method;
    const char *path; /* path and query as the vector's request line has them */
    const char *headers[5];
    const char *body;
    const char *token;
    const char *signed_headers;
    const char *signature;
} Vector;

/* From AWS's SigV4 test suite (aws-sig-v4-test-suite, also shipped by
 * aws-c-auth and the AWS SDK for JavaScript): region us-east-1, service
 * "service", AKIDEXAMPLE, 2015-08-30T12:36:00Z, host example.amazonaws.com. */
static const Vector vectors[] = {
    {"get-vanilla",
     "GET",
     "/",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/?Param2=value2&Param1=value1",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-encoded",
     "GET",
     "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"},
    {"get-vanilla-query-unreserved",
     "GET",
     "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query",
     "GET",
     "/?\xe1\x88\xb4=bar",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"get-vanilla-empty-query-key",
     "GET",
     "/?Param1=value1",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
    {"get-unreserved",
     "GET",
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-utf8",
     "GET",
     "/\xe1\x88\xb4",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-space",
     "GET",
     "/example space/",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
    {"get-relative",
     "GET",
     "/example/..",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-relative-relative",
     "GET",
     "/example1/example2/../..",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-slash-dot-slash",
     "GET",
     "/./",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-slash-pointless-dot",
     "GET",
     "/./example",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
    /* The "unnormalized" (S3) variants: repeated slashes are signed as sent. */
    {"get-slash-unnormalized",
     "GET",
     "//",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "c88bcd3d312d75078c0cd961d6deae3f4c754924b01669efcfcb439fd5e5b76e"},
    {"get-slashes-unnormalized",
     "GET",
     "//example//",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"},
    {"get-header-key-duplicate",
     "GET",
     "/",
     {"My-Header1:value2", "My-Header1:value2", "My-Header1:value1"},
     NULL,
     NULL,
     "host;my-header1;x-amz-date",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-header-value-multiline",
     "GET",
     "/",
     {"My-Header1:value1\n  value2\n     value3"},
     NULL,
     NULL,
     "host;my-header1;x-amz-date",
     "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd"},
    {"get-header-value-order",
     "GET",
     "/",
     {"My-Header1:value4", "My-Header1:value1", "My-Header1:value3", "My-Header1:value2"},
     NULL,
     NULL,
     "host;my-header1;x-amz-date",
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"get-header-value-trim",
     "GET",
     "/",
     {"My-Header1: value1", "My-Header2: \"a   b   c\""},
     NULL,
     NULL,
     "host;my-header1;my-header2;x-amz-date",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-vanilla-with-session-token",
     "GET",
     "/",
     {0},
     NULL,
     "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
     "host;x-amz-date;x-amz-security-token",
     "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"},
    {"post-vanilla",
     "POST",
     "/",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-vanilla-query",
     "POST",
     "/?Param1=value1",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-vanilla-query-nonunreserved",
     "POST",
     "/?%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e"},
    {"post-header-key-case",
     "POST",
     "/",
     {0},
     NULL,
     NULL,
     "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-key-sort",
     "POST",
     "/",
     {"My-Header1:value1"},
     NULL,
     NULL,
     "host;my-header1;x-amz-date",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
    {"post-header-value-case",
     "POST",
     "/",
     {"My-Header1:VALUE1"},
     NULL,
     NULL,
     "host;my-header1;x-amz-date",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-sts-header-before",
     "POST",
     "/",
     {0},
     NULL,
     "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpS"
     "PfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQ"
     "DYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
     "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
     "host;x-amz-date;x-amz-security-token",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     {"Content-Type:application/x-www-form-urlencoded"},
     "Param1=value1",
     NULL,
     "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-x-www-form-urlencoded-parameters",
     "POST",
     "/",
     {"Content-Type:application/x-www-form-urlencoded; charset=utf8"},
     "Param1=value1",
     NULL,
     "content-type;host;x-amz-date",
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
};

/* Sends one vector's request through aws_request to the fake (with the
 * vector's Host and X-Amz-Date, which curl signs as given) and returns
 * whether the Authorization header is the published one. */
static int check_vector(Fixture *fx, const Vector *v, const char *host, const char *date,
                        const char *service, const char *scope_date, const char *ak) {
    const char *headers[9] = {0};
    char host_line[128], date_line[64];
    snprintf(host_line, sizeof host_line, "Host: %s", host);
    snprintf(date_line, sizeof date_line, "X-Amz-Date: %s", date);
    int n = 0;
    headers[n++] = host_line;
    headers[n++] = date_line;
    for (int i = 0; i < 5 && v->headers[i]; i++)
        headers[n++] = v->headers[i];
    int before = fake_aws_count(fx->fake);
    AwsResponse resp;
    int rc = send_to_fake(fx, v->method, service, v->path, headers, v->body, 1, &resp);
    aws_response_free(&resp);
    const FakeAwsRequest *r = fake_aws_request(fx->fake, before);
    char want[512];
    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/%s/aws4_request, SignedHeaders=%s, "
             "Signature=%s",
             ak, scope_date, service, v->signed_headers, v->signature);
    int ok = rc == 0 && r && r->authorization && !strcmp(r->authorization, want);
    if (!ok)
        fprintf(stderr, "vector %s:\n  want %s\n  got  %s (%s)\n", v->name, want,
                r && r->authorization ? r->authorization : "(no request)", rc ? fx->msg : "ok");
    return ok;
}

static void test_sigv4_vectors(void **state) {
    Fixture *fx = *state;
    int failed = 0;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        env_keys(VECTOR_AK, VECTOR_SK, vectors[i].token);
        open_aws(fx);
        failed += !check_vector(fx, &vectors[i], "example.amazonaws.com", VECTOR_DATE, "service",
                                "20150830", VECTOR_AK);
    }
    assert_int_equal(failed, 0);
}

/* The worked examples of the IAM and S3 documentation. */
static void test_sigv4_documented_examples(void **state) {
    Fixture *fx = *state;
    static const Vector iam = {"iam-list-users",
                               "GET",
                               "/?Action=ListUsers&Version=2010-05-08",
                               {"Content-Type: application/x-www-form-urlencoded; charset=utf-8"},
                               NULL,
                               NULL,
                               "content-type;host;x-amz-date",
                               "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"};
    env_keys(VECTOR_AK, VECTOR_SK, NULL);
    open_aws(fx);
    assert_true(
        check_vector(fx, &iam, "iam.amazonaws.com", VECTOR_DATE, "iam", "20150830", VECTOR_AK));
    /* S3's GET Object example; x-amz-content-sha256 is added by aws_request. */
    static const Vector s3 = {"s3-get-object",
                              "GET",
                              "/test.txt",
                              {"Range: bytes=0-9"},
                              NULL,
                              NULL,
                              "host;range;x-amz-content-sha256;x-amz-date",
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"};
    env_keys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL);
    open_aws(fx);
    assert_true(check_vector(fx, &s3, "examplebucket.s3.amazonaws.com", "20130524T000000Z", "s3",
                             "20130524", "AKIAIOSFODNN7EXAMPLE"));
}

/* ---- Credentials ---------------------------------------------------------- */

static void get_credentials(Fixture *fx, AwsCredentials *c) {
    int rc = aws_credentials(fx->aws, c, fx->msg, sizeof fx->msg);
    if (rc) fprintf(stderr, "aws_credentials: %s\n", fx->msg);
    assert_int_equal(rc, 0);
}

static void test_chain_environment_beats_profile(void **state) {
    Fixture *fx = *state;
    const char *file = tu_tmp("credentials");
    const char ini[] = "# comment\n[default]\naws_access_key_id = PROFKEY\n"
                       "aws_secret_access_key=profsecret\n\n[other]\n"
                       "aws_access_key_id=OTHERKEY\naws_secret_access_key = othersecret\n"
                       "aws_session_token = othertoken\n";
    assert_int_equal(tu_write(file, ini, strlen(ini)), 0);
    setenv("AWS_SHARED_CREDENTIALS_FILE", file, 1);
    env_keys("ENVKEY", "envsecret", "envtoken");
    open_aws(fx);
    AwsCredentials c;
    get_credentials(fx, &c);
    assert_string_equal(c.source, "environment");
    assert_string_equal(c.access_key, "ENVKEY");
    assert_string_equal(c.session_token, "envtoken");
    assert_true(c.expires_at == 0);

    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    open_aws(fx);
    get_credentials(fx, &c);
    assert_string_equal(c.source, "profile");
    assert_string_equal(c.access_key, "PROFKEY");
    assert_string_equal(c.secret_key, "profsecret");
    assert_string_equal(c.session_token, "");

    setenv("AWS_PROFILE", "other", 1);
    open_aws(fx);
    get_credentials(fx, &c);
    assert_string_equal(c.access_key, "OTHERKEY");
    assert_string_equal(c.session_token, "othertoken");

    setenv("AWS_PROFILE", "missing", 1);
    open_aws(fx);
    assert_int_equal(aws_credentials(fx->aws, &c, fx->msg, sizeof fx->msg), DI_ENOTFOUND);
    assert_non_null(strstr(fx->msg, "no profile [missing]"));
}

static void test_chain_none_names_every_source(void **state) {
    Fixture *fx = *state;
    open_aws(fx);
    AwsCredentials c;
    assert_int_equal(aws_credentials(fx->aws, &c, fx->msg, sizeof fx->msg), DI_ENOTFOUND);
    const char *names[] = {"environment:", "profile:", "ecs:", "imds:"};
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(fx->msg, names[i]));
    /* A request says the same instead of sending anything unsigned. */
    AwsResponse resp;
    assert_int_equal(send_to_fake(fx, "GET", "sqs", "/", NULL, NULL, 1, &resp), DI_ENOTFOUND);
    assert_int_equal(fake_aws_count(fx->fake), 0);
    aws_response_free(&resp);
}

static void use_ecs(Fixture *fx) {
    char url[256];
    snprintf(url, sizeof url, "%s/ecs-credentials", fake_aws_url(fx->fake));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-secret", 1);
    fake_aws_set_ecs_auth(fx->fake, "ecs-auth-secret");
}

static void use_imds(Fixture *fx) {
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_aws_url(fx->fake), 1);
}

static void test_chain_ecs(void **state) {
    Fixture *fx = *state;
    use_ecs(fx);
    open_aws(fx);
    AwsCredentials c;
    get_credentials(fx, &c);
    assert_string_equal(c.source, "ecs");
    assert_string_equal(c.access_key, "ECSKEY1");
    assert_string_equal(c.secret_key, "secret1");
    assert_string_equal(c.session_token, "ecs-token-1");
    double ahead = c.expires_at - (double)time(NULL);
    assert_true(ahead > 3500 && ahead <= 3601);

    /* The token from a file wins over the variable; a wrong one is refused. */
    const char *file = tu_tmp("ecs-token");
    assert_int_equal(tu_write(file, "wrong\n", 6), 0);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file, 1);
    open_aws(fx);
    assert_int_equal(aws_credentials(fx->aws, &c, fx->msg, sizeof fx->msg), DI_ENOTFOUND);
    assert_non_null(strstr(fx->msg, "HTTP 403"));
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");

    /* Plain http to anywhere but loopback or the ECS agent is refused. */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds", 1);
    open_aws(fx);
    assert_int_equal(aws_credentials(fx->aws, &c, fx->msg, sizeof fx->msg), DI_ENOTFOUND);
    assert_non_null(strstr(fx->msg, "plain http only to loopback"));
}

static void test_chain_imds_v2(void **state) {
    Fixture *fx = *state;
    use_imds(fx);
    open_aws(fx);
    AwsCredentials c;
    get_credentials(fx, &c);
    assert_string_equal(c.source, "imds");
    assert_string_equal(c.access_key, "IMDSKEY1");
    assert_string_equal(c.session_token, "imds-token-1");
    assert_int_equal(fake_aws_imds_token_puts(fx->fake), 1);
    assert_int_equal(fake_aws_imds_refused(fx->fake), 0);

    /* The fake really insists on the token: IMDSv1 reads are refused. */
    char url[256], *body = NULL;
    long status = 0;
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/",
             fake_aws_url(fx->fake));
    assert_int_equal(
        aws_plain_http("GET", url, NULL, 2000, &status, &body, fx->msg, sizeof fx->msg), 0);
    assert_int_equal(status, 401);
    free(body);
    assert_int_equal(fake_aws_imds_refused(fx->fake), 1);

    /* The environment beats the instance. */
    env_keys("ENVKEY", "envsecret", NULL);
    open_aws(fx);
    get_credentials(fx, &c);
    assert_string_equal(c.source, "environment");
    assert_int_equal(fake_aws_imds_fetches(fx->fake), 1);
}

static void test_refresh_before_expiry(void **state) {
    Fixture *fx = *state;
    use_imds(fx);
    AwsCredentials c;
    /* Expiring in two minutes: inside the five-minute margin, so each use
     * fetches anew. */
    fake_aws_set_ttl(fx->fake, 120);
    open_aws(fx);
    get_credentials(fx, &c);
    get_credentials(fx, &c);
    assert_int_equal(fake_aws_imds_fetches(fx->fake), 2);
    assert_string_equal(c.access_key, "IMDSKEY2");
    /* Expiring in an hour: cached. */
    fake_aws_set_ttl(fx->fake, 3600);
    get_credentials(fx, &c);
    get_credentials(fx, &c);
    get_credentials(fx, &c);
    assert_int_equal(fake_aws_imds_fetches(fx->fake), 3);
    /* Until someone says they are bad. */
    aws_credentials_invalidate(fx->aws);
    get_credentials(fx, &c);
    assert_int_equal(fake_aws_imds_fetches(fx->fake), 4);
    assert_string_equal(c.access_key, "IMDSKEY4");
}

/* ---- Retries --------------------------------------------------------------- */

static void test_throttling_is_retried(void **state) {
    Fixture *fx = *state;
    env_keys("AK", "SK", NULL);
    open_aws(fx);
    fake_aws_push(fx->fake, (FakeAwsAnswer){400,
                                            "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                                            "ThrottlingException\",\"message\":\"Rate exceeded\"}",
                                            "Content-Type: application/x-amz-json-1.0"});
    fake_aws_push(fx->fake, (FakeAwsAnswer){503,
                                            "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
                                            "<Message>Please reduce your request rate.</Message>"
                                            "</Error>",
                                            "Content-Type: application/xml"});
    fake_aws_push(fx->fake, (FakeAwsAnswer){200, "{\"Item\":{}}", NULL});
    AwsResponse resp;
    const char *headers[] = {"X-Amz-Target: DynamoDB_20120810.GetItem",
                             "Content-Type: application/x-amz-json-1.0", NULL};
    assert_int_equal(send_to_fake(fx, "POST", "dynamodb", "/", headers, "{}", 0, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 3);
    assert_string_equal(resp.body, "{\"Item\":{}}");
    assert_string_equal(resp.error_code, "");
    assert_string_equal(resp.request_id, "fake-request-id");
    assert_int_equal(fake_aws_count(fx->fake), 3);
    aws_response_free(&resp);
}

static void test_client_errors_are_not_retried(void **state) {
    Fixture *fx = *state;
    env_keys("AK", "SK", NULL);
    open_aws(fx);
    fake_aws_push(fx->fake, (FakeAwsAnswer){400,
                                            "{\"__type\":\"com.amazon.coral.validate#"
                                            "ValidationException\",\"message\":\"bad key\"}",
                                            NULL});
    AwsResponse resp;
    assert_int_equal(send_to_fake(fx, "POST", "dynamodb", "/", NULL, "{}", 0, &resp), 0);
    assert_int_equal(resp.status, 400);
    assert_int_equal(resp.attempts, 1);
    assert_string_equal(resp.error_code, "ValidationException");
    assert_string_equal(resp.error_message, "bad key");
    aws_response_free(&resp);

    /* S3's XML, entities decoded. */
    fake_aws_push(fx->fake, (FakeAwsAnswer){404,
                                            "<Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; "
                                            "&amp; c</Message></Error>",
                                            "x-amz-request-id: s3-req-1"});
    assert_int_equal(send_to_fake(fx, "GET", "s3", "/bucket/key", NULL, NULL, 0, &resp), 0);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.error_code, "NoSuchKey");
    assert_string_equal(resp.error_message, "a <b> & c");
    assert_string_equal(resp.request_id, "s3-req-1");
    aws_response_free(&resp);

    /* SQS's JSON protocol: the query-compatible code is in a header. */
    fake_aws_push(fx->fake, (FakeAwsAnswer){400, "",
                                            "x-amzn-query-error: "
                                            "AWS.SimpleQueueService.NonExistentQueue;Sender"});
    assert_int_equal(send_to_fake(fx, "POST", "sqs", "/", NULL, "{}", 0, &resp), 0);
    assert_string_equal(resp.error_code, "AWS.SimpleQueueService.NonExistentQueue");
    char value[64];
    assert_int_equal(aws_response_header(&resp, "X-AMZN-QUERY-ERROR", value, sizeof value), 0);
    assert_string_equal(value, "AWS.SimpleQueueService.NonExistentQueue;Sender");
    assert_int_equal(aws_response_header(&resp, "x-absent", value, sizeof value), DI_ENOTFOUND);
    aws_response_free(&resp);
}

static void test_server_errors_run_out(void **state) {
    Fixture *fx = *state;
    env_keys("AK", "SK", NULL);
    open_aws(fx);
    for (int i = 0; i < 3; i++)
        fake_aws_push(fx->fake,
                      (FakeAwsAnswer){500, "<Error><Code>InternalError</Code></Error>", NULL});
    AwsResponse resp;
    /* Every attempt answered: the last answer is the result, not an error. */
    assert_int_equal(send_to_fake(fx, "GET", "s3", "/b/k", NULL, NULL, 3, &resp), 0);
    assert_int_equal(resp.status, 500);
    assert_int_equal(resp.attempts, 3);
    assert_string_equal(resp.error_code, "InternalError");
    aws_response_free(&resp);
}

static void test_dead_port_fails_clearly(void **state) {
    Fixture *fx = *state;
    env_keys("AK", "SK", NULL);
    open_aws(fx);
    /* A port nothing listens on: bound, then closed. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&addr, &len), 0);
    close(s);
    char url[64], host[32];
    snprintf(host, sizeof host, "127.0.0.1:%u", (unsigned)ntohs(addr.sin_port));
    snprintf(url, sizeof url, "http://%s/queue", host);
    AwsRequest req = {.method = "POST",
                      .service = "sqs",
                      .url = url,
                      .body = "{}",
                      .body_len = 2,
                      .max_attempts = 3};
    AwsResponse resp;
    assert_int_equal(aws_request(fx->aws, &req, &resp, fx->msg, sizeof fx->msg), DI_EIO);
    assert_int_equal(resp.attempts, 3);
    assert_non_null(strstr(fx->msg, host));
    assert_non_null(strstr(fx->msg, "no answer after 3 attempts"));
    aws_response_free(&resp);
}

static void test_expired_token_refreshes(void **state) {
    Fixture *fx = *state;
    use_ecs(fx);
    open_aws(fx);
    fake_aws_expire_token(fx->fake, "ecs-token-1");
    AwsResponse resp;
    assert_int_equal(send_to_fake(fx, "POST", "sqs", "/", NULL, "{}", 0, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(fake_aws_ecs_fetches(fx->fake), 2);
    assert_string_equal(fake_aws_request(fx->fake, 0)->security_token, "ecs-token-1");
    assert_string_equal(fake_aws_request(fx->fake, 1)->security_token, "ecs-token-2");
    aws_response_free(&resp);

    /* If new credentials are refused too, the answer stands: one refresh. */
    fake_aws_expire_token(fx->fake, "ecs-token-2");
    fake_aws_push(fx->fake, (FakeAwsAnswer){400, "{\"__type\":\"ExpiredTokenException\"}", NULL});
    assert_int_equal(send_to_fake(fx, "POST", "sqs", "/", NULL, "{}", 0, &resp), 0);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.error_code, "ExpiredTokenException");
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(fake_aws_ecs_fetches(fx->fake), 3);
    aws_response_free(&resp);
}

typedef struct {
    int resets;
    char got[64];
    size_t n;
} Sink;

static int sink_data(void *ud, const void *data, size_t n) {
    Sink *s = ud;
    if (s->n + n >= sizeof s->got) return 1;
    memcpy(s->got + s->n, data, n);
    s->n += n;
    return 0;
}

static void sink_reset(void *ud) {
    Sink *s = ud;
    s->resets++;
    s->n = 0;
}

static void test_streamed_body_restarts(void **state) {
    Fixture *fx = *state;
    env_keys("AK", "SK", NULL);
    open_aws(fx);
    fake_aws_push(fx->fake, (FakeAwsAnswer){503, "<Error><Code>SlowDown</Code></Error>", NULL});
    fake_aws_push(fx->fake, (FakeAwsAnswer){200, "hello, object", "ETag: \"abc\""});
    Sink sink = {0};
    char url[256];
    snprintf(url, sizeof url, "%s/bucket/key", fake_aws_url(fx->fake));
    AwsRequest req = {.method = "GET",
                      .service = "s3",
                      .url = url,
                      .on_data = sink_data,
                      .on_reset = sink_reset,
                      .ud = &sink};
    AwsResponse resp;
    assert_int_equal(aws_request(fx->aws, &req, &resp, fx->msg, sizeof fx->msg), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(sink.resets, 1);
    assert_int_equal(sink.n, 13);
    assert_memory_equal(sink.got, "hello, object", 13);
    assert_true(resp.body == NULL || resp.body_len == 0);
    assert_string_equal(resp.etag, "\"abc\"");
    aws_response_free(&resp);
}

/* ---- What is sent ----------------------------------------------------------- */

static void test_s3_put_headers(void **state) {
    Fixture *fx = *state;
    env_keys("AK", "SK", "session-xyz");
    open_aws(fx);
    AwsResponse resp;
    assert_int_equal(
        send_to_fake(fx, "PUT", "s3", "/bucket/uploads/a%20b.wav", NULL, "hello", 0, &resp), 0);
    aws_response_free(&resp);
    const FakeAwsRequest *r = fake_aws_request(fx->fake, 0);
    assert_string_equal(r->method, "PUT");
    assert_string_equal(r->path, "/bucket/uploads/a b.wav");
    assert_int_equal(r->body_len, 5);
    assert_string_equal(r->content_sha256,
                        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    /* Not curl's form type: S3 would store that as the object's type. */
    assert_string_equal(r->content_type, "binary/octet-stream");
    assert_string_equal(r->security_token, "session-xyz");
    assert_non_null(strstr(r->authorization, "/us-east-1/s3/aws4_request"));
    assert_non_null(strstr(r->authorization,
                           "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
                           "x-amz-security-token,"));
}

/* ---- Endpoints and region --------------------------------------------------- */

static void endpoint_is(Fixture *fx, const char *service, const char *want, int want_custom) {
    char out[256];
    int custom = -1;
    assert_int_equal(aws_endpoint(fx->aws, service, out, sizeof out, &custom), 0);
    assert_string_equal(out, want);
    assert_int_equal(custom, want_custom);
}

static void test_endpoints(void **state) {
    Fixture *fx = *state;
    open_aws(fx);
    endpoint_is(fx, "s3", "https://s3.us-east-1.amazonaws.com", 0);
    endpoint_is(fx, "dynamodb", "https://dynamodb.us-east-1.amazonaws.com", 0);
    setenv("AWS_ENDPOINT_URL", "http://localhost:4566/", 1);
    open_aws(fx);
    endpoint_is(fx, "s3", "http://localhost:4566", 1);
    endpoint_is(fx, "sqs", "http://localhost:4566", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000", 1);
    open_aws(fx);
    endpoint_is(fx, "s3", "http://127.0.0.1:9000", 1);
    endpoint_is(fx, "sqs", "http://localhost:4566", 1);
    setenv("S3_ENDPOINT", "http://127.0.0.1:4569", 1);
    setenv("SQS_ENDPOINT", "http://127.0.0.1:9324", 1);
    setenv("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000", 1);
    open_aws(fx);
    endpoint_is(fx, "s3", "http://127.0.0.1:4569", 1);
    endpoint_is(fx, "sqs", "http://127.0.0.1:9324", 1);
    endpoint_is(fx, "dynamodb", "http://127.0.0.1:8000", 1);
    char small[8];
    assert_int_equal(aws_endpoint(fx->aws, "s3", small, sizeof small, NULL), DI_ERANGE);
    setenv("S3_ENDPOINT", "localhost:4569", 1);
    aws_close(fx->aws);
    assert_int_equal(aws_open(&fx->aws, fx->msg, sizeof fx->msg), DI_EINVAL);
    assert_non_null(strstr(fx->msg, "S3_ENDPOINT"));
}

static void test_region(void **state) {
    Fixture *fx = *state;
    open_aws(fx);
    assert_string_equal(aws_region(fx->aws), "us-east-1");
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    open_aws(fx);
    assert_string_equal(aws_region(fx->aws), "eu-west-1");
    endpoint_is(fx, "sqs", "https://sqs.eu-west-1.amazonaws.com", 0);
    setenv("AWS_REGION", "ap-southeast-2", 1);
    open_aws(fx);
    assert_string_equal(aws_region(fx->aws), "ap-southeast-2");
    setenv("AWS_REGION", "cn-north-1", 1);
    open_aws(fx);
    endpoint_is(fx, "s3", "https://s3.cn-north-1.amazonaws.com.cn", 0);
    setenv("AWS_REGION", "us-east-1/evil", 1);
    aws_close(fx->aws);
    assert_int_equal(aws_open(&fx->aws, fx->msg, sizeof fx->msg), DI_EINVAL);
}

static void test_encoding(void **state) {
    (void)state;
    char out[64], hex[65];
    assert_int_equal(aws_uri_encode("a b/c~-_.+*", 1, out, sizeof out), 0);
    assert_string_equal(out, "a%20b/c~-_.%2B%2A");
    assert_int_equal(aws_uri_encode("a b/c", 0, out, sizeof out), 0);
    assert_string_equal(out, "a%20b%2Fc");
    assert_int_equal(aws_uri_encode("\xe1\x88\xb4", 0, out, sizeof out), 0);
    assert_string_equal(out, "%E1%88%B4");
    assert_int_equal(aws_uri_encode("   ", 0, out, 9), DI_ERANGE);
    aws_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    aws_sha256_hex("hello", 5, hex);
    assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigv4_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigv4_documented_examples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_environment_beats_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_none_names_every_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_ecs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_imds_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_before_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttling_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_errors_are_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_errors_run_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_port_fails_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_token_refreshes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_body_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_put_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encoding, setup, teardown),
    };
    /* A test name as the first argument runs only that test. */
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
