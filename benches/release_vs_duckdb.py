#!/usr/bin/env python3
"""Bench (issue #11): the whole release, `dars run` beside the DuckDB peer.

    python3 benches/release_vs_duckdb.py [--people 2000000] [--cohort 200000]
        [--episodes 20000000[,50000000,...]] [--runs 3] [--dars BIN] [--bench-dir DIR]

Makes the data once with `dars synth` (kept in BENCH_DIR, outside the
repository, and reused), then runs `dars run` and the peer
(`../shared/peers/duckdb_release.py`, DuckDB SQL plus the `age` command)
in turn, alternating, RUNS times each, each from a clean work directory.
Both do the same release: exact validation on NHS number, date of birth,
gender and postcode, objections removed, one records output
(`admission_date:month`, `diagnosis_primary`, `age_at_admission:band5`,
`region`, Parquet) and one `hes` aggregate of persons by region and sex,
each file encrypted with age. dars also searches fuzzy candidates
(`manual_validation = true`), queues them, signs, delivers to a local
folder and appends to its ledger; the peer does none of that.

Prints each run, then the medians, the ratio dars / peer, and each one's
whole-process peak RSS from the OS (`/usr/bin/time -f %M`), plus dars's
per-stage seconds and peaks from its summary.json.

Without --dars it builds the release profile (`cargo build --release`):
on a 2-core machine a cold release build takes about an hour. A test
build (`target/debug/dars`) gives upper bounds only; say which in a report.
Needs: /usr/bin/time, age, python3 with duckdb.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER = REPO.parent / "shared" / "peers" / "duckdb_release.py"

AGREEMENT = """\
[agreement]
reference    = "DARS-NIC-000011-BENCH-01"
organisation = "Bench University"
start        = 2026-01-01
end          = 2030-12-31
legal_basis  = "section-251"
schedule     = "once"
identifiable = false

[cohort]
path              = "data/cohort.csv"
validation_fields = ["nhs_number", "date_of_birth", "gender", "postcode"]
manual_validation = true

[objections]
apply = ["type1", "ndoo"]

[[outputs]]
name    = "episodes"
kind    = "records"
dataset = "hes_apc"
fields  = ["admission_date:month", "diagnosis_primary", "age_at_admission:band5", "region"]
format  = "parquet"

[[outputs]]
name        = "admissions_by_region"
kind        = "aggregate"
dataset     = "hes_apc"
group_by    = ["region", "sex"]
count       = "persons"
suppression = "hes"

[release]
recipients  = ["{recipient}"]
destination = "file://outbox"
"""

SITE = """\
[sources]
demographics = "data/site/demographics.parquet"
objections = "data/site/objections.parquet"
[datasets.hes_apc]
path = "{dataset}"
key = "person_id"
[keys]
signing_key = "keys/release_signing_ed25519"
signer = "releases@example.nhs.uk"
[work]
dir = "work"
"""


def timed(cmd, cwd, log):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS MiB)."""
    fmt = "BENCH %e %M"
    with open(log, "w") as err:
        p = subprocess.run(["/usr/bin/time", "-f", fmt] + cmd, cwd=cwd,
                           stdout=subprocess.PIPE, stderr=err, text=True)
    lines = Path(log).read_text().splitlines()
    stat = [l for l in lines if l.startswith("BENCH ")]
    if p.returncode != 0 or not stat:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n" + "\n".join(lines[-8:]))
    _, wall, kib = stat[-1].split()
    return float(wall), int(kib) / 1024, p.stdout


def bench_scale(a, dars, episodes):
    """One scale: the data (made once), RUNS alternating runs each; prints
    them and returns the medians."""
    d = Path(a.bench_dir) / f"p{a.people}-c{a.cohort}-e{episodes}"
    (d / "keys").mkdir(parents=True, exist_ok=True)
    if not (d / "data" / "truth.csv").is_file():
        w, m, _ = timed([str(dars), "synth", "--out", str(d / "data"), "--people", str(a.people),
                         "--cohort", str(a.cohort), "--episodes", str(episodes), "--seed", "1"],
                        d, d / "synth.log")
        print(f"synth: {w:.1f} s, {m:.0f} MiB peak")
    for k in ("release_signing_ed25519", "recipient_TEST-ONLY.agepub"):
        shutil.copy(REPO / "testdata" / "keys" / k, d / "keys" / k)
    os.chmod(d / "keys" / "release_signing_ed25519", 0o600)
    recipient = (d / "keys" / "recipient_TEST-ONLY.agepub").read_text().split()[0]
    dataset = a.dataset or "data/site/hes_apc.parquet"
    (d / "site.toml").write_text(SITE.format(dataset=dataset))
    (d / "agreement.toml").write_text(AGREEMENT.format(recipient=recipient))
    peer_site = d / "data" / "site"

    results = {"dars": [], "peer": []}
    stages = []
    for i in range(a.runs):
        for who in ("dars", "peer"):
            for x in ("work", "outbox", "peer-out"):
                shutil.rmtree(d / x, ignore_errors=True)
            (d / "outbox").mkdir()
            if who == "dars":
                w, m, _ = timed([str(dars), "--site", "site.toml", "--log-format", "json", "run",
                                 "agreement.toml"], d, d / "dars-run.log")
                summary = max((d / "work").glob("*/runs/*/summary.json"), key=os.path.getmtime)
                s = json.loads(summary.read_text())
                stages.append({st["stage"]: (st["seconds"], st.get("peak_rss_mib")) for st in s["stages"]})
                # dars resets the kernel's high-water mark between stages to
                # measure each, which lowers what /usr/bin/time reads at exit
                # to the last stages' peak; the summary's peak_rss_mib is the
                # process's VmHWM folded over every reset.
                m = max(m, s.get("peak_rss_mib") or 0)
            else:
                w, m, out = timed([sys.executable, a.peer, "--site", str(peer_site), "--cohort",
                                   str(d / "data" / "cohort.csv"), "--recipient", recipient,
                                   "--out", str(d / "peer-out")], d, d / "peer-run.log")
            results[who].append((w, m))
            print(f"run {i + 1} {who:<5} {w:8.2f} s {m:8.0f} MiB peak", flush=True)

    med = {k: (statistics.median(w for w, _ in v), max(m for _, m in v)) for k, v in results.items()}
    print(f"\nscale: {a.people:,} people, {a.cohort:,} cohort rows, {episodes:,} episodes; "
          f"median of {a.runs}; dars = {dars}")
    print(f"{'':<6}{'wall s':>10}{'peak MiB':>10}")
    for k in ("dars", "peer"):
        print(f"{k:<6}{med[k][0]:>10.2f}{med[k][1]:>10.0f}")
    print(f"ratio {med['dars'][0] / med['peer'][0]:>10.2f}{med['dars'][1] / med['peer'][1]:>10.2f}  (dars / peer)")
    print("\ndars stages (median seconds, largest peak MiB):")
    for name in stages[0]:
        secs = statistics.median(s[name][0] for s in stages if name in s)
        peak = max((s[name][1] or 0) for s in stages if name in s)
        print(f"  {name:<12}{secs:>8.2f}{peak:>8}")

    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=2_000_000)
    ap.add_argument("--cohort", type=int, default=200_000)
    ap.add_argument("--episodes", default="20000000",
                    help="episodes, or a comma-separated list of scales for a scaling table")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dars", help="dars binary (default: build the release profile)")
    ap.add_argument("--dataset", help="dataset path relative to the data folder's parent "
                    "(default data/site/hes_apc.parquet), e.g. a hive-partitioned folder")
    ap.add_argument("--peer", default=str(PEER),
                    help="the DuckDB peer script (default ../shared/peers/duckdb_release.py)")
    ap.add_argument("--bench-dir", default=os.environ.get("BENCH_DIR", "/var/tmp/dars-bench"))
    a = ap.parse_args()

    if a.dars:
        dars = Path(a.dars).resolve()
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/dars-target"))
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "dars"],
                       cwd=REPO, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
        dars = target / "release" / "dars"
    scales = [int(e) for e in str(a.episodes).split(",")]
    meds = [(e, bench_scale(a, dars, e)) for e in scales]
    if len(meds) > 1:
        # How wall time and peak memory grow with the dataset: time should
        # grow with the episodes, memory stay flat (bounded by the cohort).
        e0, m0 = meds[0]
        print(f"\nscaling ({a.people:,} people, {a.cohort:,} cohort rows; median wall, largest peak):")
        print(f"{'episodes':>12}{'dars s':>9}{'MiB':>7}{'peer s':>9}{'MiB':>7}{'dars/peer':>11}"
              f"{'dars s/10M ep':>15}{'dars MiB vs first':>19}")
        for e, m in meds:
            print(f"{e:>12,}{m['dars'][0]:>9.2f}{m['dars'][1]:>7.0f}{m['peer'][0]:>9.2f}{m['peer'][1]:>7.0f}"
                  f"{m['dars'][0] / m['peer'][0]:>11.2f}{m['dars'][0] / e * 1e7:>15.2f}"
                  f"{(m['dars'][1] / m0['dars'][1] - 1) * 100:>+18.0f}%")


if __name__ == "__main__":
    main()
