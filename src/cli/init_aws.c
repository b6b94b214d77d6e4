/* diarist init-aws: creates the fleet's bucket, queues and tables if they
 * are missing (the seed's localstack/init-aws.sh, idempotent). */
#include "aws/aws.h"
#include "cli/cli.h"
#include "core/core.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: diarist init-aws\n\n"
               "Creates, when missing, what the fleet uses on AWS (or on any server that\n"
               "speaks its protocols): the bucket $AUDIO_BUCKET_NAME, the queue named by\n"
               "$PROCESSING_QUEUE_URL with a dead-letter queue NAME-dlq (redrive after 5\n"
               "receives), and the tables $TRANSCRIPTION_TABLE and $NOTES_TABLE (on-demand,\n"
               "hash key job_id). Running it again changes nothing. Endpoints come from\n"
               "S3_ENDPOINT, SQS_ENDPOINT, DYNAMODB_ENDPOINT or AWS_ENDPOINT_URL; credentials\n"
               "and region from the standard AWS chain.\n");
}

static void report(void *ud, const char *what, const char *name, const char *how) {
    (void)ud;
    printf("%-6s %-28s %s\n", what, name, how);
    fflush(stdout);
}

int cmd_init_aws(int argc, char **argv) {
    if (argc > 1) {
        int help = !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help");
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    char msg[2048];
    Aws *aws = NULL;
    if (aws_open(&aws, msg, sizeof msg)) {
        fprintf(stderr, "diarist init-aws: %s\n", msg);
        return 1;
    }
    AwsProvision p;
    aws_provision_defaults(&p);
    p.report = report;
    int rc = aws_provision(aws, &p, msg, sizeof msg);
    aws_close(aws);
    if (rc) {
        fprintf(stderr, "diarist init-aws: %s\n", msg);
        return 1;
    }
    printf("PROCESSING_QUEUE_URL=%s\n", p.queue_url);
    return 0;
}
