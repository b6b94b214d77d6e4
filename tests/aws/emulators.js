// Starts servers that speak the S3, SQS and DynamoDB protocols on loopback,
// for diarist's tests (real AWS cannot be reached from where it is built).
// usage: node emulators.js DATA_DIR PORT_FILE [s3|sqs|dynamodb[:PORT] ...]
// Each server takes the port given, else a free one; PORT_FILE gets one
// line per server, "s3 PORT", "sqs PORT", "dynamodb PORT", then "ready".
// S3 objects and DynamoDB tables live under DATA_DIR, so a server killed
// and started again on the same port and directory has lost nothing; SQS
// keeps its queues in memory. Runs until killed.
"use strict";
const fs = require("fs");
const path = require("path");

const [dataDir, portFile, ...which] = process.argv.slice(2);
if (!dataDir || !portFile) {
  console.error("usage: node emulators.js DATA_DIR PORT_FILE [s3|sqs|dynamodb ...]");
  process.exit(2);
}
const wanted = which.length ? which : ["s3", "sqs", "dynamodb"];
const lines = [];

async function startS3(port) {
  const S3rver = require("s3rver");
  const dir = path.join(dataDir, "s3");
  fs.mkdirSync(dir, { recursive: true });
  // s3rver knows only the key pair S3RVER/S3RVER unless told of more; the
  // tests sign with dummy keys, so register the common ones.
  const { DUMMY_ACCOUNT } = require("s3rver/lib/models/account");
  const id = process.env.AWS_ACCESS_KEY_ID || "test";
  DUMMY_ACCOUNT.createKeyPair(id, process.env.AWS_SECRET_ACCESS_KEY || "test");
  const server = new S3rver({ port, address: "127.0.0.1", directory: dir, silent: true });
  const addr = await server.run();
  lines.push(`s3 ${addr.port}`);
}

async function startSqs(port) {
  const { createSqsServer } = require("local-aws-sqs");
  const server = await createSqsServer({
    port, hostname: "127.0.0.1", region: process.env.AWS_DEFAULT_REGION || "us-east-1",
    accountId: "000000000000", emulateQueueCreationLifecycle: false,
  });
  lines.push(`sqs ${server.address().port}`);
}

async function startDynamo(port) {
  const dynalite = require("dynalite");
  const dir = path.join(dataDir, "dynamodb");
  fs.mkdirSync(dir, { recursive: true });
  const server = dynalite({ path: dir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise((ok, fail) => server.listen(port, "127.0.0.1", (e) => (e ? fail(e) : ok())));
  lines.push(`dynamodb ${server.address().port}`);
}

(async () => {
  const starters = { s3: startS3, sqs: startSqs, dynamodb: startDynamo };
  for (const spec of wanted) {
    const [name, port] = spec.split(":");
    if (!starters[name]) throw new Error(`unknown server ${name}`);
    await starters[name](Number(port || 0));
  }
  fs.writeFileSync(portFile + ".tmp", lines.join("\n") + "\nready\n");
  fs.renameSync(portFile + ".tmp", portFile);
})().catch((e) => {
  console.error(`emulators: ${e.stack || e}`);
  process.exit(1);
});
