"""A forwarding HTTP proxy on loopback that answers every Nth request itself
with an AWS error, for tests of diarist's retries against real AWS-protocol
servers: throttling (DynamoDB's 400 ThrottlingException, S3's 503 SlowDown)
is injected between diarist and the emulator.

usage: python3 fault_proxy.py TARGET_URL PORT_FILE EVERY KIND
KIND: throttling (JSON 400 ThrottlingException) or slowdown (XML 503 SlowDown).
The port is written to PORT_FILE; the count of injected answers to
PORT_FILE.injected after each one. Standard library only; runs until killed.
"""
import http.client
import http.server
import sys
import threading
import urllib.parse

target = urllib.parse.urlsplit(sys.argv[1])
port_file, every, kind = sys.argv[2], int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
seen = injected = 0

FAULTS = {
    "throttling": (400, "application/x-amz-json-1.0",
                   b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
                   b'"message":"Rate of requests exceeds the allowed throughput."}'),
    "slowdown": (503, "application/xml",
                 b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate.</Message></Error>'),
}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one(self):
        global seen, injected
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with lock:
            seen += 1
            fault = seen % every == 0
            if fault:
                injected += 1
                with open(port_file + ".injected", "w") as f:
                    f.write(str(injected))
        if fault:
            status, ctype, payload = FAULTS[kind]
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
