/* The fleet's AWS resources, created if missing: the seed's bucket, queue
 * (with a dead-letter queue and a redrive policy) and two tables. Every
 * step accepts "already there", so running it twice changes nothing. It
 * replaces the seed's localstack/init-aws.sh. */
#include "aws/aws.h"

#include "core/core.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void aws_provision_defaults(AwsProvision *p) {
    memset(p, 0, sizeof *p);
    const char *v;
    snprintf(p->bucket, sizeof p->bucket, "%s",
             (v = getenv("AUDIO_BUCKET_NAME")) && *v ? v : "audio-files");
    snprintf(p->transcriptions_table, sizeof p->transcriptions_table, "%s",
             (v = getenv("TRANSCRIPTION_TABLE")) && *v ? v : "AudioTranscriptions");
    snprintf(p->notes_table, sizeof p->notes_table, "%s",
             (v = getenv("NOTES_TABLE")) && *v ? v : "DiaryNotes");
    /* The queue's name is the last segment of PROCESSING_QUEUE_URL. */
    const char *url = getenv("PROCESSING_QUEUE_URL");
    const char *slash = url && *url ? strrchr(url, '/') : NULL;
    snprintf(p->queue, sizeof p->queue, "%s",
             slash && slash[1] ? slash + 1 : "audio-processing-queue");
    p->max_receives = 5;
    p->visibility_s = 300;
}

static void say(const AwsProvision *p, const char *what, const char *name, const char *how) {
    if (p->report) p->report(p->report_ud, what, name, how);
}

/* One JSON-protocol call (SQS, DynamoDB). */
static int json_call(Aws *aws, const char *service, const char *target, json_t *body,
                     AwsResponse *resp, char *msg, size_t cap) {
    char endpoint[1024], hdr_target[256];
    int custom = 0;
    if (aws_endpoint(aws, service, endpoint, sizeof endpoint, &custom))
        return di_fail(msg, cap, DI_ERANGE, "%s endpoint too long", service);
    strcat(endpoint, "/");
    snprintf(hdr_target, sizeof hdr_target, "X-Amz-Target: %s", target);
    const char *headers[] = {hdr_target, "Content-Type: application/x-amz-json-1.0", NULL};
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    AwsRequest req = {.method = "POST",
                      .service = service,
                      .url = endpoint,
                      .headers = headers,
                      .body = text,
                      .body_len = strlen(text)};
    int rc = aws_request(aws, &req, resp, msg, cap);
    free(text);
    return rc;
}

static int failed(const char *what, const char *name, const AwsResponse *r, char *msg, size_t cap) {
    return di_fail(msg, cap, DI_EIO, "cannot create %s %s: HTTP %ld %s: %s", what, name, r->status,
                   r->error_code, r->error_message);
}

/* ---- S3 ---------------------------------------------------------------- */

static int make_bucket(Aws *aws, const AwsProvision *p, char *msg, size_t cap) {
    char endpoint[1024], url[1400];
    int custom = 0;
    if (aws_endpoint(aws, "s3", endpoint, sizeof endpoint, &custom))
        return di_fail(msg, cap, DI_ERANGE, "s3 endpoint too long");
    /* Path-style: the one form every S3-compatible server takes. */
    snprintf(url, sizeof url, "%s/%s", endpoint, p->bucket);
    /* Outside us-east-1 S3 wants the region named in the body. */
    char body[256] = "";
    if (strcmp(aws_region(aws), "us-east-1"))
        snprintf(body, sizeof body,
                 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                 aws_region(aws));
    AwsRequest req = {
        .method = "PUT", .service = "s3", .url = url, .body = body, .body_len = strlen(body)};
    AwsResponse r = {0};
    int rc = aws_request(aws, &req, &r, msg, cap);
    if (!rc) {
        if (r.status / 100 == 2)
            say(p, "bucket", p->bucket, "created");
        else if (!strcmp(r.error_code, "BucketAlreadyOwnedByYou") ||
                 !strcmp(r.error_code, "BucketAlreadyExists"))
            say(p, "bucket", p->bucket, "already there");
        else
            rc = failed("bucket", p->bucket, &r, msg, cap);
    }
    aws_response_free(&r);
    return rc;
}

/* ---- SQS --------------------------------------------------------------- */

/* CreateQueue, or, when a queue of that name exists with other attributes,
 * its URL and then its attributes set to ours. */
static int make_queue(Aws *aws, const AwsProvision *p, const char *name, json_t *attrs, char *url,
                      size_t url_cap, char *msg, size_t cap) {
    AwsResponse r = {0};
    int rc =
        json_call(aws, "sqs", "AmazonSQS.CreateQueue",
                  json_pack("{s:s, s:O}", "QueueName", name, "Attributes", attrs), &r, msg, cap);
    int exists = !rc && strstr(r.error_code, "QueueAlreadyExists") != NULL;
    if (!rc && r.status / 100 != 2 && !exists) rc = failed("queue", name, &r, msg, cap);
    if (!rc && !exists) {
        json_t *doc = json_loads(r.body ? r.body : "", 0, NULL);
        const char *u = json_string_value(json_object_get(doc, "QueueUrl"));
        if (u)
            snprintf(url, url_cap, "%s", u);
        else
            rc = di_fail(msg, cap, DI_EFORMAT, "CreateQueue %s: no QueueUrl in the answer", name);
        json_decref(doc);
        if (!rc) say(p, "queue", name, "ready");
    }
    aws_response_free(&r);
    if (!rc && exists) {
        rc = json_call(aws, "sqs", "AmazonSQS.GetQueueUrl", json_pack("{s:s}", "QueueName", name),
                       &r, msg, cap);
        json_t *doc = !rc ? json_loads(r.body ? r.body : "", 0, NULL) : NULL;
        const char *u = json_string_value(json_object_get(doc, "QueueUrl"));
        if (!rc && !u) rc = failed("queue", name, &r, msg, cap);
        if (!rc) snprintf(url, url_cap, "%s", u);
        json_decref(doc);
        aws_response_free(&r);
        if (!rc)
            rc = json_call(aws, "sqs", "AmazonSQS.SetQueueAttributes",
                           json_pack("{s:s, s:O}", "QueueUrl", url, "Attributes", attrs), &r, msg,
                           cap);
        if (!rc && r.status / 100 != 2) rc = failed("queue", name, &r, msg, cap);
        aws_response_free(&r);
        if (!rc) say(p, "queue", name, "already there; attributes updated");
    }
    json_decref(attrs);
    return rc;
}

static int queue_arn(Aws *aws, const char *url, char *arn, size_t cap_arn, char *msg, size_t cap) {
    AwsResponse r = {0};
    int rc = json_call(aws, "sqs", "AmazonSQS.GetQueueAttributes",
                       json_pack("{s:s, s:[s]}", "QueueUrl", url, "AttributeNames", "QueueArn"), &r,
                       msg, cap);
    json_t *doc = !rc ? json_loads(r.body ? r.body : "", 0, NULL) : NULL;
    const char *a =
        json_string_value(json_object_get(json_object_get(doc, "Attributes"), "QueueArn"));
    if (!rc && !a) rc = failed("queue ARN for", url, &r, msg, cap);
    if (!rc) snprintf(arn, cap_arn, "%s", a);
    json_decref(doc);
    aws_response_free(&r);
    return rc;
}

static int make_queues(Aws *aws, AwsProvision *p, char *msg, size_t cap) {
    char dlq_name[300], dlq_url[2048], arn[512], vis[32], redrive[700];
    snprintf(dlq_name, sizeof dlq_name, "%s-dlq", p->queue);
    /* The dead letters are kept the longest SQS allows: 14 days. */
    int rc = make_queue(aws, p, dlq_name, json_pack("{s:s}", "MessageRetentionPeriod", "1209600"),
                        dlq_url, sizeof dlq_url, msg, cap);
    if (!rc) rc = queue_arn(aws, dlq_url, arn, sizeof arn, msg, cap);
    if (rc) return rc;
    /* SQS moves a message itself once its count passes maxReceiveCount, and
     * then nobody records why the job failed. One more than ours, so the
     * worker sees the last attempt and ends the job with its reason. */
    snprintf(redrive, sizeof redrive, "{\"maxReceiveCount\":\"%d\",\"deadLetterTargetArn\":\"%s\"}",
             p->max_receives + 1, arn);
    snprintf(vis, sizeof vis, "%d", p->visibility_s);
    return make_queue(aws, p, p->queue,
                      json_pack("{s:s, s:s, s:s}", "VisibilityTimeout", vis,
                                "ReceiveMessageWaitTimeSeconds", "20", "RedrivePolicy", redrive),
                      p->queue_url, sizeof p->queue_url, msg, cap);
}

/* ---- DynamoDB ---------------------------------------------------------- */

static int table_status(Aws *aws, const char *name, char *status, size_t scap, char *msg,
                        size_t cap) {
    AwsResponse r = {0};
    int rc = json_call(aws, "dynamodb", "DynamoDB_20120810.DescribeTable",
                       json_pack("{s:s}", "TableName", name), &r, msg, cap);
    json_t *doc = !rc ? json_loads(r.body ? r.body : "", 0, NULL) : NULL;
    const char *s =
        json_string_value(json_object_get(json_object_get(doc, "Table"), "TableStatus"));
    if (!rc && !s) rc = failed("table", name, &r, msg, cap);
    if (!rc) snprintf(status, scap, "%s", s);
    json_decref(doc);
    aws_response_free(&r);
    return rc;
}

static int make_table(Aws *aws, const AwsProvision *p, const char *name, char *msg, size_t cap) {
    AwsResponse r = {0};
    /* The seed's layout: hash key job_id (a string), billed per request. */
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s}], s:s}", "TableName", name,
                             "AttributeDefinitions", "AttributeName", "job_id", "AttributeType",
                             "S", "KeySchema", "AttributeName", "job_id", "KeyType", "HASH",
                             "BillingMode", "PAY_PER_REQUEST");
    int rc = json_call(aws, "dynamodb", "DynamoDB_20120810.CreateTable", body, &r, msg, cap);
    int exists = !rc && strstr(r.error_code, "ResourceInUseException") != NULL;
    if (!rc && r.status / 100 != 2 && !exists) rc = failed("table", name, &r, msg, cap);
    aws_response_free(&r);
    if (rc) return rc;
    /* A new table takes a moment to become usable; wait for it. */
    char status[64] = "";
    for (int i = 0; i < 600; i++) {
        if ((rc = table_status(aws, name, status, sizeof status, msg, cap))) return rc;
        if (!strcmp(status, "ACTIVE")) break;
        usleep(100000);
    }
    if (strcmp(status, "ACTIVE"))
        return di_fail(msg, cap, DI_EIO, "table %s is still %s after 60 s", name, status);
    say(p, "table", name, exists ? "already there" : "created");
    return 0;
}

int aws_provision(Aws *aws, AwsProvision *p, char *msg, size_t cap) {
    if (!aws || !p) return di_fail(msg, cap, DI_EINVAL, "aws_provision: no handle");
    int rc = make_bucket(aws, p, msg, cap);
    if (!rc) rc = make_queues(aws, p, msg, cap);
    if (!rc) rc = make_table(aws, p, p->transcriptions_table, msg, cap);
    if (!rc) rc = make_table(aws, p, p->notes_table, msg, cap);
    return rc;
}
