#!/usr/bin/env python3
"""Bench: `dars review` on a large review queue (issue #13: "usable at 50,000
queued rows").

usage: benches/review_at_scale.py --dars PATH [--people N] [--cohort N]
                                  [--work DIR] [--decisions N]

Makes the data with `dars synth` (reused when already there), runs the
shipped example agreement against it with `dars run --dry-run` (which writes
the run's review queue), starts `dars review --port 0`, and then works the
queue over HTTP the way the page does: for each of --decisions study IDs it
asks for one page of the list, the study, and saves an accept of the first
candidate. It prints the queue size, the server's start-up time, latency
percentiles per call, the largest response (the queue is paged, never sent
whole), the server's peak RSS (VmHWM from /proc), and how long the decisions
file takes to write on SIGTERM.

Synthetic data only (`dars synth`); nothing here reads a real identifier, and
nothing is printed but counts, sizes and times.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t


def setup(dars, work, people, cohort):
    data = os.path.join(work, "data")
    if not os.path.exists(os.path.join(data, "truth.csv")):
        s = sh([dars, "synth", "--out", data, "--people", str(people), "--cohort", str(cohort),
                "--episodes", str(max(people // 10, 1000)), "--seed", "1"],
               stdout=subprocess.DEVNULL)
        print(f"synth: {s:.1f} s")
    keys = os.path.join(work, "keys")
    os.makedirs(keys, exist_ok=True)
    for k in ("release_signing_ed25519", "recipient_TEST-ONLY.agepub"):
        shutil.copy(os.path.join(REPO, "testdata", "keys", k), keys)
    os.chmod(os.path.join(keys, "release_signing_ed25519"), 0o600)
    with open(os.path.join(work, "site.toml"), "w") as f:
        f.write(
            '[sources]\ndemographics = "data/site/demographics.parquet"\n'
            'objections = "data/site/objections.parquet"\n'
            '[datasets.hes_apc]\npath = "data/site/hes_apc.parquet"\nkey = "person_id"\n'
            '[keys]\nsigning_key = "keys/release_signing_ed25519"\n'
            'signer = "releases@example.nhs.uk"\n[work]\ndir = "work"\n')
    src = open(os.path.join(REPO, "config", "agreements", "DARS-NIC-000001-DEMO1-01.toml")).read()
    src = re.sub(r'(?m)^path *= *"\.\./\.\./testdata/cohort\.csv"', 'path = "data/cohort.csv"', src)
    src = re.sub(r'(?m)^destination *=.*$', 'destination = "file://outbox"', src)
    # The review writes its decisions beside the agreement; start each bench
    # from an empty review.
    src = re.sub(r'(?m)^review_decisions *=.*$', '', src)
    agreement = os.path.join(work, "agreement.toml")
    with open(agreement, "w") as f:
        f.write(src)
    os.makedirs(os.path.join(work, "outbox"), exist_ok=True)
    for old in os.listdir(work):
        if old.endswith(".decisions.csv"):
            os.remove(os.path.join(work, old))
    shutil.rmtree(os.path.join(work, "work"), ignore_errors=True)
    t = sh([dars, "--site", os.path.join(work, "site.toml"), "run", agreement, "--dry-run"],
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"dars run --dry-run: {t:.1f} s")
    return agreement


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dars", required=True)
    ap.add_argument("--people", type=int, default=2_000_000)
    ap.add_argument("--cohort", type=int, default=200_000)
    ap.add_argument("--work", default="/var/tmp/dars-bench-review")
    ap.add_argument("--decisions", type=int, default=300)
    a = ap.parse_args()
    work = os.path.join(a.work, f"p{a.people}-c{a.cohort}")
    os.makedirs(work, exist_ok=True)
    agreement = setup(os.path.abspath(a.dars), work, a.people, a.cohort)

    t0 = time.perf_counter()
    p = subprocess.Popen([os.path.abspath(a.dars), "--site", os.path.join(work, "site.toml"),
                          "review", agreement, "--port", "0", "--reviewer", "bench"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    url = None
    for line in p.stdout:
        if line.startswith("open http"):
            url = line.split()[1]
            break
    if url is None:
        sys.exit("dars review printed no URL")
    ready = time.perf_counter() - t0
    base, token = url.split("/?token=")

    def call(method, path, body=None):
        req = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"X-Dars-Token": token,
                                              "Content-Type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            raw = r.read()
        return time.perf_counter() - t, len(raw), json.loads(raw)

    _, _, summary = call("GET", "/api/summary")
    lat = {"list": [], "study": [], "decide": []}
    biggest = 0
    done = 0
    for i in range(a.decisions):
        dt, n, lst = call("GET", f"/api/list?offset={(i * 50) % max(summary['counts']['studies'], 1)}&limit=50")
        lat["list"].append(dt); biggest = max(biggest, n)
        dt, n, st = call("GET", "/api/study")
        lat["study"].append(dt); biggest = max(biggest, n)
        s = st["study"]
        if s is None:
            break
        dt, n, _ = call("POST", "/api/decide", {"study_id": s["study_id"], "decision": "accept",
                                                "person_id": s["candidates"][0]["person_id"]})
        lat["decide"].append(dt)
        done += 1
    hwm = None
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) // 1024
    t = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    write = time.perf_counter() - t

    print(f"queue: {summary['counts']}")
    print(f"server ready after {ready:.2f} s; peak RSS {hwm} MiB; {done} decisions saved")
    for k, xs in lat.items():
        if xs:
            print(f"  {k:<7} median {pct(xs, 50) * 1000:7.1f} ms  p95 {pct(xs, 95) * 1000:7.1f} ms  "
                  f"max {max(xs) * 1000:7.1f} ms  (n={len(xs)})")
    print(f"largest response {biggest / 1024:.1f} KiB; decisions file written on SIGTERM in {write:.2f} s "
          f"(exit {p.returncode})")


if __name__ == "__main__":
    main()
