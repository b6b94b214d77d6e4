#!/usr/bin/env python3
"""The seed's load test, with its command line, for diarist or the seed.

    API_URL=http://localhost:8000 python3 tests/load_test.py --requests 10 --workers 5 --monitor

Uploads N audio files with W concurrent uploaders (POST multipart field
"file" to /upload-audio/), then with --monitor polls /status/{id} until each
job is completed or in error, and prints the seed's report. Python's
standard library only, so it runs wherever python3 does. `diarist loadtest`
is the same test in C with latency percentiles and throughput.

Exit status: 0 when every upload succeeded (and, with --monitor, every job
completed), 1 otherwise, 2 usage error.
"""
import argparse
import concurrent.futures
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def default_sample():
    """jfk.wav from the shared samples beside the checkout, if present."""
    candidates = []
    if os.environ.get("DIARIST_SHARED"):
        candidates.append(os.path.join(os.environ["DIARIST_SHARED"], "samples", "jfk.wav"))
    candidates.append(os.path.join(HERE, "..", "..", "shared", "samples", "jfk.wav"))
    for path in candidates:
        if os.path.isfile(path):
            return os.path.normpath(path)
    return None


def multipart(path):
    """A multipart/form-data body with the file in the field "file"."""
    boundary = uuid.uuid4().hex
    name = os.path.basename(path).replace('"', "_")
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        data = f.read()
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n"
    ).encode()
    return f"multipart/form-data; boundary={boundary}", head + data + f"\r\n--{boundary}--\r\n".encode()


def request(url, body=None, ctype=None, timeout=60):
    """(status, parsed JSON or None); raises OSError when nothing answers."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def upload(api, path, i):
    """One upload: (job_id or None, seconds, error text or None)."""
    t0 = time.monotonic()
    try:
        ctype, body = multipart(path)
        status, doc = request(f"{api}/upload-audio/", body, ctype)
    except OSError as e:
        return None, time.monotonic() - t0, f"request {i + 1}: upload failed: {e}"
    elapsed = time.monotonic() - t0
    if status == 200 and isinstance(doc, dict) and doc.get("job_id"):
        return doc["job_id"], elapsed, None
    detail = doc.get("detail") if isinstance(doc, dict) else doc
    return None, elapsed, f"request {i + 1}: upload failed: HTTP {status}: {detail}"


def monitor(api, jobs, poll_interval, timeout):
    """Polls every pending job each round; returns {job_id: final state}."""
    started = time.monotonic()
    state = {job: "queued" for job in jobs}
    pending = set(jobs)
    while pending:
        round_start = time.monotonic()
        for job in sorted(pending):
            try:
                status, doc = request(f"{api}/status/{job}", timeout=30)
            except OSError as e:
                print(f"job {job}: status poll failed: {e}", file=sys.stderr)
                continue
            if status == 404:
                state[job] = "lost"
            elif status == 200 and isinstance(doc, dict):
                state[job] = doc.get("status", "?")
            if state[job] in ("completed", "error", "lost"):
                pending.discard(job)
                if state[job] != "completed":
                    print(f"job {job}: {state[job]}", file=sys.stderr)
        if pending and time.monotonic() - started > timeout:
            for job in pending:
                print(f"job {job}: timed out in state {state[job]}", file=sys.stderr)
                state[job] = "timeout"
            break
        time.sleep(max(0.0, poll_interval - (time.monotonic() - round_start)))
    return state


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=10, help="uploads (default 10)")
    p.add_argument("--workers", type=int, default=5, help="concurrent uploaders (default 5)")
    p.add_argument("--monitor", action="store_true", help="poll each job until it ends")
    p.add_argument("--file", action="append", help="audio to upload (repeatable; default jfk.wav from ../shared/samples)")
    p.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls (default 5)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the jobs (default 300)")
    args = p.parse_args()
    if args.requests < 1 or args.workers < 1 or args.poll_interval <= 0 or args.timeout <= 0:
        p.error("--requests, --workers, --poll-interval and --timeout must be positive")
    files = args.file or ([default_sample()] if default_sample() else [])
    if not files:
        p.error("no sample audio found: pass --file F")
    for f in files:
        if not os.path.isfile(f):
            p.error(f"cannot read {f}")
    api = os.environ.get("API_URL", "http://localhost:8000").rstrip("/")

    print(f"Starting load test with {args.requests} requests and {args.workers} workers against {api}")
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(lambda i: upload(api, files[i % len(files)], i), range(args.requests)))
    total = time.monotonic() - t0
    jobs = [job for job, _, _ in results if job]
    for _, _, err in results:
        if err:
            print(err, file=sys.stderr)
    times = [t for job, t, _ in results if job]
    failed = args.requests - len(jobs)

    print("\nLoad Test Results:")
    print(f"Total Requests: {args.requests}")
    print(f"Successful Requests: {len(jobs)}")
    print(f"Failed Requests: {failed}")
    print(f"Total Time: {total:.2f} seconds")
    if times:
        print(f"Average Upload Time: {sum(times) / len(times):.3f} seconds")
    print(f"Requests per Second: {args.requests / total:.2f}")

    ok = failed == 0
    if args.monitor and jobs:
        print(f"\nMonitoring {len(jobs)} jobs...")
        state = monitor(api, jobs, args.poll_interval, args.timeout)
        counts = {}
        for s in state.values():
            counts[s] = counts.get(s, 0) + 1
        print(f"Completed: {counts.get('completed', 0)}")
        print(f"Errors: {counts.get('error', 0) + counts.get('lost', 0)}")
        print(f"Timed out: {counts.get('timeout', 0)}")
        print(f"Monitoring time: {time.monotonic() - t0:.2f} seconds")
        ok = ok and counts.get("completed", 0) == len(jobs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
