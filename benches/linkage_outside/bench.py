#!/usr/bin/env python3.11
"""Linkage against outside references: dars beside Splink on data nobody in
this project tuned for (issue #10). Not run in CI.

    python3.11 benches/linkage_outside/bench.py --dars PATH_TO_dars \\
        [--datasets febrl1,febrl2,febrl3,outside] [--people 200000 --cohort 20000] \\
        [--seed 10] [--work DIR] [--splink PATH_TO_splink_peer.py] \\
        [--linkers dars,splink] [--reuse] [--curve LINK_BENCH]

Per dataset it writes DATA_DIR = WORK/NAME/data (cohort.csv and
site/demographics.parquet, the DESIGN.md schemas) and WORK/NAME/truth.csv
(never in DATA_DIR, never given to a linker), runs

- dars: `dars --site SITE link AGREEMENT --out WORK/NAME/dars` with
  `manual_validation = true` and the four validation fields, under
  `/usr/bin/time -v`;
- Splink: `splink_peer.py DATA_DIR WORK/NAME/splink`, under `/usr/bin/time -v`;

and prints, per kind of row, for each linker: rank1 (the true person is
validated, or ranked first in the queue), cand (the true person is validated
or among the first five queued candidates: dars queues at most five),
wrong (validated to someone else; for absent people, validated at all),
valid (validated to the true person), queued (absent people only: any
candidate queued), then wall time and peak RSS of each run. For dars it
also prints, per blocking key (the review queue's `found_by`), how many
true pairs in the queue that key proposed and how many only that key did,
and groups the rows dars misses by why; WORK/NAME/dars_misses.csv lists
them by study ID with the field levels of the true and the top pair (never
a value). WORK/NAME/results.json holds every figure.

Datasets: `febrl1..3` (see febrl.py), `outside` (see outside.py; default
200 000 people x 20 000 rows, which the dev build links in about a second
and Splink in about 90 s), and `synth` (`dars synth` with its own broader
error model, same --people/--cohort/--seed; not in the default list, since
it is not an outside reference).
For larger runs, and for figures to quote against Splink, pass a release
build (`cargo build --release`, `--dars target/release/dars`) and e.g.
`--people 2000000 --cohort 200000`.

`--curve LINK_BENCH` (the executable `cargo bench --bench link --no-run`
prints) also prints the trade-off of the review bar `REVIEW_PROBABILITY`:
absent people queued and rank-1 at bars 0.3-0.8, from one run at bar 0.
For absent people it also prints how many queued ones someone in the index
matches on every field the row carries but the postcode: the floor no
linker beats without losing true matches (that person, had they moved).

`--reuse` keeps data already generated for the same parameters and Splink's
output (and its measured time) from an earlier run on that data, so a linker
change can be re-measured in seconds.
"""
import argparse
import collections
import csv
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.dirname(os.path.dirname(HERE))

from common import read_truth, write_cohort, write_demographics, write_truth  # noqa: E402

TOP = 5  # candidates counted for "cand": dars queues at most five


# ------------------------------------------------------------------ data

def build(name, args, ddir):
    params = {"name": name}
    if name in ("outside", "synth"):
        params.update(people=args.people, cohort=args.cohort, seed=args.seed)
    params["generator"] = generator_stamp(name, args)
    stamp = os.path.join(ddir, "params.json")
    data = os.path.join(ddir, "data")
    if args.reuse and os.path.exists(stamp):
        with open(stamp) as fh:
            old = json.load(fh)
        if {k: v for k, v in old.items() if k not in ("index_people", "cohort_rows")} == params:
            return old, False
    t = time.time()
    if name.startswith("febrl"):
        import febrl
        people, rows, truth = febrl.load(int(name[-1]))
    elif name == "outside":
        import outside
        people, rows, truth = outside.make(args.people, args.cohort, args.seed)
    elif name == "synth":
        return build_synth(args, ddir, params, stamp, data, t)
    else:
        raise SystemExit(f"unknown dataset {name!r}: use febrl1, febrl2, febrl3, outside or synth")
    os.makedirs(os.path.join(data, "site"), exist_ok=True)
    n_people = write_demographics(os.path.join(data, "site", "demographics.parquet"), people)
    n_rows = write_cohort(os.path.join(data, "cohort.csv"), rows)
    write_truth(os.path.join(ddir, "truth.csv"), truth)
    params.update(index_people=n_people, cohort_rows=n_rows)
    with open(stamp, "w") as fh:
        json.dump(params, fh)
    print(f"  data: {n_people} people, {n_rows} cohort rows in {time.time() - t:.1f} s",
          flush=True)
    return params, True


def build_synth(args, ddir, params, stamp, data, t):
    """`dars synth` (its own broader error model), truth.csv moved out of
    DATA_DIR so that no linker can see it."""
    if not args.dars:
        raise SystemExit("the synth dataset needs --dars PATH")
    import shutil
    if os.path.isdir(data):
        shutil.rmtree(data)
    cmd = [args.dars, "synth", "--out", data, "--people", str(args.people),
           "--cohort", str(args.cohort), "--episodes", "0", "--seed", str(args.seed)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"dars synth failed (exit {p.returncode}): {p.stderr[-2000:]}")
    os.replace(os.path.join(data, "truth.csv"), os.path.join(ddir, "truth.csv"))
    truth = read_truth(os.path.join(ddir, "truth.csv"))
    params.update(index_people=args.people, cohort_rows=len(truth))
    with open(stamp, "w") as fh:
        json.dump(params, fh)
    print(f"  data: dars synth, {args.people} people, {len(truth)} cohort rows in "
          f"{time.time() - t:.1f} s", flush=True)
    return params, True


def generator_stamp(name, args):
    """Changes when the generator's code changes (so --reuse regenerates)."""
    import hashlib
    h = hashlib.sha256()
    if name == "synth":
        st = os.stat(args.dars)
        return f"dars-{st.st_size}-{int(st.st_mtime)}"
    for f in ("common.py", "febrl.py" if name.startswith("febrl") else "outside.py"):
        with open(os.path.join(HERE, f), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ running

def timed(cmd, log):
    """Runs cmd under /usr/bin/time -v; returns (rc, wall_s, peak_mib)."""
    t = time.time()
    with open(log, "w") as fh:
        p = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.time() - t
    peak = None
    with open(log, errors="replace") as fh:
        for line in fh:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", line)
            if m:
                peak = int(m.group(1)) / 1024
            m = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", line)
            if m:
                wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return p.returncode, wall, peak


def run_dars(args, ddir):
    cfg = os.path.join(ddir, "dars-config")
    os.makedirs(cfg, exist_ok=True)
    os.makedirs(os.path.join(ddir, "outbox"), exist_ok=True)
    data = os.path.join(ddir, "data")
    td = os.path.join(REPO, "testdata")
    with open(os.path.join(cfg, "site.toml"), "w") as fh:
        fh.write(f"""# bench only: the index under test; objections, datasets and keys are
# the shipped TEST-ONLY examples (linkage does not read them)
[sources]
demographics = "{data}/site/demographics.parquet"
objections   = "{td}/site/objections.parquet"

[datasets.hes_apc]
path = "{td}/site/hes_apc.parquet"
key  = "person_id"

[keys]
signing_key = "{td}/keys/release_signing_ed25519"
signer      = "releases@example.nhs.uk"

[work]
dir = "{ddir}/dars-work"
""")
    with open(os.path.join(cfg, "agreement.toml"), "w") as fh:
        fh.write(f"""[agreement]
reference    = "DARS-NIC-000001-DEMO1-01"
organisation = "Linkage bench"
start        = 2020-01-01
end          = 2099-12-31
legal_basis  = "section-251"
schedule     = "once"
identifiable = false

[cohort]
path              = "{data}/cohort.csv"
validation_fields = ["nhs_number", "date_of_birth", "gender", "postcode"]
manual_validation = true

[objections]
apply = ["type1", "ndoo"]

[[outputs]]
name    = "episodes"
kind    = "records"
dataset = "hes_apc"
fields  = ["admission_date:month", "diagnosis_primary"]

[release]
recipients  = ["age1vxrmrwunqftyp04u8yhzucj6u6uthfetrx7f8prdf75ylg56zaps5pdg27"]
destination = "file://{ddir}/outbox"
""")
    out = os.path.join(ddir, "dars")
    if os.path.isdir(out):
        for f in os.listdir(out):
            os.remove(os.path.join(out, f))
    cmd = [args.dars, "--site", os.path.join(cfg, "site.toml"), "link",
           os.path.join(cfg, "agreement.toml"), "--out", out]
    rc, wall, peak = timed(cmd, os.path.join(ddir, "dars.log"))
    if rc != 0:
        with open(os.path.join(ddir, "dars.log")) as fh:
            tail = fh.read()[-3000:]
        raise SystemExit(f"dars link failed (exit {rc}); log {ddir}/dars.log:\n{tail}")
    with open(os.path.join(ddir, "dars.log"), errors="replace") as fh:
        for line in fh:
            # dars's own summary and warnings carry counts and key names only
            if line.startswith(("warning:", "note:", "review queue:")) or " rows: " in line[:20]:
                print("  dars says: " + line.rstrip(), flush=True)
    return out, wall, peak


def run_splink(args, ddir, fresh_data):
    out = os.path.join(ddir, "splink")
    meta = os.path.join(ddir, "splink.json")
    if args.reuse and not fresh_data and os.path.exists(meta) and os.path.exists(
            os.path.join(out, "linkage.csv")):
        with open(meta) as fh:
            m = json.load(fh)
        return out, m["wall"], m["peak"], True
    cmd = [sys.executable, args.splink, os.path.join(ddir, "data"), out]
    rc, wall, peak = timed(cmd, os.path.join(ddir, "splink.log"))
    if rc != 0:
        with open(os.path.join(ddir, "splink.log")) as fh:
            tail = fh.read()[-3000:]
        raise SystemExit(f"splink_peer failed (exit {rc}); log {ddir}/splink.log:\n{tail}")
    with open(meta, "w") as fh:
        json.dump({"wall": wall, "peak": peak}, fh)
    return out, wall, peak, False


# ------------------------------------------------------------------ reading

def pid(v):
    v = (v or "").strip()
    if not v:
        return None
    try:
        return str(int(float(v)))
    except ValueError:
        return v


def read_outputs(out):
    """-> (validated: sid -> pid, queue: sid -> [(rank, pid, row)], outcome: sid -> str,
    reason: sid -> str)"""
    validated, outcome, reason = {}, {}, {}
    with open(os.path.join(out, "linkage.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            sid = r["study_id"]
            outcome[sid] = r["outcome"]
            reason[sid] = r.get("reason", "")
            if r["outcome"] in ("validated", "reviewed") and pid(r["person_id"]):
                validated[sid] = pid(r["person_id"])
    queue = collections.defaultdict(list)
    with open(os.path.join(out, "review_queue.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            queue[r["study_id"]].append((int(r["rank"]), pid(r["person_id"]), r))
    for v in queue.values():
        v.sort(key=lambda x: x[0])
    return validated, queue, outcome, reason


def evaluate(truth, outputs):
    validated, queue, _, _ = outputs
    per = collections.defaultdict(collections.Counter)
    rowwise = {}
    for sid, (true, kind) in truth.items():
        v = validated.get(sid)
        cands = [p for _, p, _ in queue.get(sid, [])]
        if v is not None:
            ranked = [v] + [p for p in cands if p != v]
        else:
            ranked = cands
        c = per[kind]
        c["rows"] += 1
        if true is None:
            c["absent"] += 1
            c["wrong"] += v is not None
            c["queued"] += v is None and bool(cands)
            rowwise[sid] = ("absent", v, ranked)
            continue
        c["present"] += 1
        c["rank1"] += bool(ranked) and ranked[0] == true and (v is None or v == true)
        c["cand"] += true in ranked[:TOP]
        c["wrong"] += v is not None and v != true
        c["valid"] += v == true
        rowwise[sid] = ("present", v, ranked)
    return per, rowwise


def pct(n, d):
    return f"{100.0 * n / d:6.1f}%" if d else "      -"


def totals(per, kinds):
    t = collections.Counter()
    for k in kinds:
        t.update(per.get(k, {}))
    return t


# ------------------------------------------------------------------ true pair

def _digits(v):
    return "".join(c for c in (v or "") if c.isdigit())


def _date(v):
    import datetime as dt
    v = (v or "").strip()
    for f in ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"):
        try:
            return dt.datetime.strptime(v, f).date()
        except ValueError:
            pass
    return None


def _pc(v):
    return "".join((v or "").upper().split())


def _gender(v):
    v = (v or "").strip().upper()[:1]
    return {"1": "1", "M": "1", "2": "2", "F": "2"}.get(v, "")


def true_pair_fields(ddir, truth, sids):
    """The bench's own comparison of each cohort row with its true person
    (not dars's levels): sid -> 'nhs=.. dob=.. pc=.. fn=.. sn=..'."""
    import pyarrow.parquet as pq
    from common import is_valid_nhs
    want = {truth[s][0] for s in sids if truth[s][0]}
    t = pq.read_table(os.path.join(ddir, "data", "site", "demographics.parquet")).to_pylist()
    index = {str(r["person_id"]): r for r in t if str(r["person_id"]) in want}
    look = None
    if any(truth[s][0] is None for s in sids):
        # What an absent person shares with someone in the index.
        up = lambda v: (v or "").strip().upper()  # noqa: E731
        look = {"surname+postcode": {(up(r["surname"]), _pc(r["postcode"])) for r in t},
                "forename+surname": {(up(r["forename"]), up(r["surname"])) for r in t},
                "surname+dob": {(up(r["surname"]), r["date_of_birth"]) for r in t},
                # every field but the postcode: that person, had they moved
                "all but postcode": {(up(r["forename"]), up(r["surname"]), r["date_of_birth"],
                                      _gender(r["gender"])) for r in t}}
    del t
    out = {}
    with open(os.path.join(ddir, "data", "cohort.csv"), newline="", encoding="utf-8-sig") as fh:
        rd = csv.reader(fh)
        next(rd)
        for row in rd:
            sid = row[0]
            if sid not in sids:
                continue
            if truth[sid][0] is None:
                fn, sn = row[5].strip().upper(), row[6].strip().upper()
                keys = {"surname+postcode": (sn, _pc(row[4])), "forename+surname": (fn, sn),
                        "surname+dob": (sn, _date(row[2]))}
                # An absent person's valid number is nobody's, so only a row
                # without one can agree on everything but the postcode.
                if not _digits(row[1]):
                    keys["all but postcode"] = (fn, sn, _date(row[2]), _gender(row[3]))
                shared = [k for k, v in keys.items() if v in look[k]]
                nhs = "number" if _digits(row[1]) else "no number"
                out[sid] = f"shares {' and '.join(shared) or 'nothing'} with someone; {nhs}"
                continue
            p = index[truth[sid][0]]
            n = _digits(row[1])
            nhs = ("blank" if not n else "same" if n == p["nhs_number"] else
                   "other_valid" if is_valid_nhs(n) else "invalid")
            d, pd = _date(row[2]), p["date_of_birth"]
            dob = ("blank" if d is None or pd is None else "same" if d == pd else
                   "swapped" if (d.year, d.month, d.day) == (pd.year, pd.day, pd.month)
                   else "year_only" if d.year == pd.year else "differs")
            a, b = _pc(row[4]), _pc(p["postcode"])
            pc = ("blank" if not a or not b else "same" if a == b else
                  "sector" if a[:-2] == b[:-2] else "district" if a[:-3] == b[:-3]
                  else "differs")
            fn_c, sn_c = row[5].strip().upper(), row[6].strip().upper()
            fn_i, sn_i = (p["forename"] or "").upper(), (p["surname"] or "").upper()

            def name(x, y):
                return "blank" if not x or not y else "same" if x == y else (
                    "prefix" if x.startswith(y) or y.startswith(x) else "differs")
            fn, sn = name(fn_c, fn_i), name(sn_c, sn_i)
            if fn_c and fn_c == sn_i and sn_c == fn_i:
                fn = sn = "swapped"
            out[sid] = f"nhs={nhs} dob={dob} pc={pc} fn={fn} sn={sn}"
    return out


# ------------------------------------------------------------------ report

LEVEL_COLS = ["nhs_number_level", "date_of_birth_level", "gender_level", "postcode_level",
              "forename_level", "surname_level"]


def dars_blocking(truth, outputs):
    _, queue, _, _ = outputs
    by_key, only = collections.Counter(), collections.Counter()
    have = False
    for sid, rows in queue.items():
        true = truth.get(sid, (None,))[0]
        for _, p, r in rows:
            if "found_by" in r:
                have = True
            if p == true and r.get("found_by"):
                keys = [k for k in r["found_by"].split(";") if k]
                for k in keys:
                    by_key[k] += 1
                if len(keys) == 1:
                    only[keys[0]] += 1
    return have, by_key, only


def dars_misses(truth, outputs, rowwise, path):
    validated, queue, outcome, reason = outputs
    groups = collections.Counter()
    lines = []
    for sid, (true, kind) in sorted(truth.items()):
        status, v, ranked = rowwise[sid]
        if status == "absent":
            if v is not None:
                why = "absent person validated"
            elif ranked:
                why = "absent person queued"
            else:
                continue
            groups[(kind, why)] += 1
            top = queue.get(sid, [(0, None, {})])[0][2]
            lines.append([sid, kind, why, "", outcome.get(sid, "")]
                         + [top.get(c, "") for c in LEVEL_COLS] + [""] * 6
                         + [top.get("found_by", ""), reason.get(sid, "")])
            continue
        if ranked and ranked[0] == true and (v is None or v == true):
            continue
        qrows = queue.get(sid, [])
        true_row = next((r for _, p, r in qrows if p == true), None)
        top_row = qrows[0][2] if qrows else {}
        if v is not None and v != true:
            why = "validated to someone else"
        elif true_row is None:
            r = reason.get(sid, "")
            if qrows:
                why = "not among candidates (others queued)"
            elif "no candidate found" in r:
                why = "unmatched: no candidate found"
            elif "no candidate scored" in r:
                why = "unmatched: every candidate below the queue score"
            else:
                why = "unmatched: " + outcome.get(sid, "")
        else:
            rank = next(k for k, p, _ in qrows if p == true)
            why = f"queued at rank {rank}" if rank <= TOP else f"queued beyond rank {TOP}"
        groups[(kind, why)] += 1
        t = true_row or {}
        lines.append([sid, kind, why, next((str(k) for k, p, _ in qrows if p == true), ""),
                      outcome.get(sid, "")]
                     + [top_row.get(c, "") for c in LEVEL_COLS]
                     + [t.get(c, "") for c in LEVEL_COLS]
                     + [t.get("found_by", ""), reason.get(sid, "")])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["study_id", "kind", "why", "true_rank", "outcome"]
                   + ["top_" + c for c in LEVEL_COLS] + ["true_" + c for c in LEVEL_COLS]
                   + ["true_found_by", "reason"])
        w.writerows(lines)
    # Level patterns of the true pair where it lost: what the scores missed.
    patterns = collections.Counter()
    for ln in lines:
        if ln[2].startswith("queued at rank") or ln[2].startswith("queued beyond"):
            true_levels = ln[11:17]
            patterns[(ln[1], " ".join(f"{c.split('_level')[0]}={x}" for c, x in
                                      zip(LEVEL_COLS, true_levels)))] += 1
    return groups, patterns, lines


CURVE_BARS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8)


def curve(bench_bin, ddir, truth):
    """The trade-off of the review bar (`REVIEW_PROBABILITY`): the link bench
    (`benches/link.rs`, built by `cargo bench --bench link --no-run`) links
    once with bar 0 and writes every row's top candidates with their
    posterior; a row's candidates pass any bar in order of weight, so one
    run gives, per bar, absent people queued and the true person ranked
    first, as `evaluate` counts them. -> {bar: {...}}"""
    cands_path = os.path.join(ddir, "curve_candidates.csv")
    dump = os.path.join(ddir, "curve")
    cmd = [bench_bin, "--data", os.path.join(ddir, "data"), "--names-only",
           "--review-probability", "0", "--candidates", cands_path, "--dump", dump]
    with open(os.path.join(ddir, "curve.log"), "w") as log:
        if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"link bench failed; log {ddir}/curve.log")
    validated = {}
    with open(os.path.join(dump, "linkage_names.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            if r["outcome"] in ("validated", "reviewed") and pid(r["person_id"]):
                validated[r["study_id"]] = pid(r["person_id"])
    cands = collections.defaultdict(list)
    with open(cands_path, newline="") as fh:
        for r in csv.DictReader(fh):
            cands[r["study_id"]].append((int(r["rank"]), pid(r["person_id"]),
                                         float(r["score"]), float(r["probability"])))
    out = {}
    for bar in CURVE_BARS:
        per = collections.defaultdict(collections.Counter)
        for sid, (true, kind) in truth.items():
            c = per[kind]
            v = validated.get(sid)
            q = [p for _, p, score, prob in sorted(cands.get(sid, []))
                 if score >= 50 or prob >= bar]
            ranked = [v] if v is not None else q
            if true is None:
                c["absent"] += 1
                c["queued"] += v is None and bool(q)
                c["wrong"] += v is not None
                continue
            c["present"] += 1
            c["rank1"] += bool(ranked) and ranked[0] == true
            c["wrong"] += v is not None and v != true
        err = [k for k in per if k != "clean" and per[k]["present"]]
        absent = sum(per[k]["absent"] for k in per)
        out[bar] = {"absent_queued": sum(per[k]["queued"] for k in per),
                    "absent": absent,
                    "rank1": sum(per[k]["rank1"] for k in err),
                    "with_errors": sum(per[k]["present"] for k in err),
                    "wrong": sum(per[k]["wrong"] for k in per),
                    "rank1_by_kind": {k: [per[k]["rank1"], per[k]["present"]] for k in err}}
    worst = sorted(out[0.5]["rank1_by_kind"].items(),
                   key=lambda kv: kv[1][0] / kv[1][1])[:2]
    print("  review bar trade-off (link bench, one run at bar 0): bar, absent queued, "
          "rank-1 over rows with errors, wrong, rank-1 of the kinds most missed")
    for bar, r in out.items():
        kinds = "  ".join(f"{k} {pct(*r['rank1_by_kind'][k]).strip()}" for k, _ in worst)
        print(f"    {bar:4.2f}  {pct(r['absent_queued'], r['absent'])}  "
              f"{pct(r['rank1'], r['with_errors'])}  {r['wrong']:>3}  {kinds}")
    return out


def print_table(name, params, truth, res, times):
    absent = {k for _, k in truth.values()} - {k for p, k in truth.values() if p is not None}
    kinds = sorted({k for _, k in truth.values()},
                   key=lambda k: (k != "clean", k in absent, k))
    linkers = list(res)
    print(f"\n== {name}: {params.get('index_people')} people in the index, "
          f"{params.get('cohort_rows')} cohort rows")
    head = f"{'kind':<24}{'rows':>7}"
    for l in linkers:
        head += f" | {l + ' rank1':>13}{'cand':>8}{'wrong':>6}{'valid':>8}{'queued':>8}"
    print(head)
    err_kinds = [k for k in kinds if k != "clean" and k not in absent]
    absent_kinds = [k for k in kinds if k in absent]
    for label, ks in ([(k, [k]) for k in kinds]
                      + [("ALL rows with errors", err_kinds)]
                      + ([("ALL absent people", absent_kinds)] if absent_kinds else [])):
        n = totals(res[linkers[0]][0], ks)
        line = f"{label:<24}{n['rows']:>7}"
        for l in linkers:
            c = totals(res[l][0], ks)
            if c["present"]:
                line += (f" | {pct(c['rank1'], c['present']):>13}{pct(c['cand'], c['present']):>8}"
                         f"{c['wrong']:>6}{pct(c['valid'], c['present']):>8}{'':>8}")
            else:
                line += (f" | {'':>13}{'':>8}{c['wrong']:>6}{'':>8}"
                         f"{pct(c['queued'], c['absent']):>8}")
        print(line)
    for l in linkers:
        wall, peak, reused = times[l]
        note = " (Splink output reused from an earlier run on the same data)" if reused else ""
        print(f"  {l}: wall {wall:.1f} s, peak RSS {peak:.0f} MiB{note}"
              if peak is not None else f"  {l}: wall {wall:.1f} s{note}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dars", help="path to the dars binary")
    ap.add_argument("--datasets", default="febrl1,febrl2,febrl3,outside")
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--cohort", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--work", default="/var/tmp/dars-linkage-outside")
    ap.add_argument("--splink", default=None, help="splink_peer.py (default: ../shared/peers)")
    ap.add_argument("--linkers", default="dars,splink")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--curve", default=None, metavar="LINK_BENCH",
                    help="the link bench executable (cargo bench --bench link --no-run "
                         "prints it): also print the review bar's trade-off curve")
    args = ap.parse_args()
    linkers = [l for l in args.linkers.split(",") if l]
    if "dars" in linkers and not args.dars:
        ap.error("--dars PATH is needed (or --linkers splink)")
    if "splink" in linkers and args.splink is None:
        for c in (os.path.join(REPO, "..", "shared", "peers", "splink_peer.py"),
                  os.path.join(REPO, "..", "..", "shared", "peers", "splink_peer.py"),
                  "/work/shared/peers/splink_peer.py"):
            if os.path.exists(c):
                args.splink = os.path.abspath(c)
                break
        else:
            ap.error("splink_peer.py not found: pass --splink PATH")
    os.makedirs(args.work, mode=0o700, exist_ok=True)
    summary = {}
    for name in [d for d in args.datasets.split(",") if d]:
        ddir = os.path.join(args.work, name)
        os.makedirs(ddir, exist_ok=True)
        print(f"-- {name}", flush=True)
        params, fresh = build(name, args, ddir)
        truth = read_truth(os.path.join(ddir, "truth.csv"))
        res, times, outs = {}, {}, {}
        for l in linkers:
            if l == "dars":
                out, wall, peak = run_dars(args, ddir)
                reused = False
            elif l == "splink":
                out, wall, peak, reused = run_splink(args, ddir, fresh)
            else:
                raise SystemExit(f"unknown linker {l!r}: use dars and/or splink")
            outs[l] = read_outputs(out)
            res[l] = evaluate(truth, outs[l])
            times[l] = (wall, peak, reused)
        print_table(name, params, truth, res, times)
        entry = {"params": params,
                 "linkers": {l: {"per_kind": {k: dict(v) for k, v in res[l][0].items()},
                                 "wall_s": times[l][0], "peak_mib": times[l][1]}
                             for l in linkers}}
        if "dars" in outs:
            have, by_key, only = dars_blocking(truth, outs["dars"])
            if have:
                print("  dars blocking keys, true pairs in the review queue "
                      "(validated rows are not in the queue, so their keys are not shown):")
                for k in sorted(set(by_key) | set(only)):
                    print(f"    {k:<28} found {by_key[k]:>6}  only this key {only[k]:>5}")
            else:
                print("  dars's review queue has no found_by column: blocking keys not shown")
            groups, patterns, lines = dars_misses(truth, outs["dars"], res["dars"][1],
                                                  os.path.join(ddir, "dars_misses.csv"))
            missed = {ln[0] for ln in lines}
            absent_ids = {sid for sid, (p, _) in truth.items() if p is None}
            agree = true_pair_fields(ddir, truth, missed | absent_ids) if missed or absent_ids \
                else {}
            by_group = collections.defaultdict(collections.Counter)
            for ln in lines:
                if ln[0] in agree:
                    by_group[(ln[1], ln[2])][agree[ln[0]]] += 1
            if groups:
                print(f"  dars misses by kind and why ({ddir}/dars_misses.csv), with the "
                      "bench's own comparison of the row and its true person (commonest):")
                for (kind, why), n in sorted(groups.items(), key=lambda x: (x[0][0], -x[1])):
                    print(f"    {kind:<24} {why:<50} {n:>6}")
                    if all(truth[ln[0]][0] is None for ln in lines if ln[1] == kind):
                        continue  # absent people: see the table below
                    for pat, m in by_group[(kind, why)].most_common(3):
                        print(f"        {m:>5}  {pat}")
            if absent_ids:
                queued = {ln[0] for ln in lines if ln[1] and ln[0] in absent_ids}
                tot, q = collections.Counter(), collections.Counter()
                for sid in absent_ids:
                    tot[agree.get(sid, "?")] += 1
                    q[agree.get(sid, "?")] += sid in queued
                print("  dars on absent people, by what they share with someone in the index "
                      "(queued or validated / rows):")
                for pat, n in tot.most_common():
                    print(f"    {q[pat]:>6} / {n:<6} {pat}")
                # The floor no linker beats without losing true matches: an
                # index person agrees on every field the row carries but the
                # postcode, as that person would had they moved.
                floor = sum(n for pat, n in q.items() if "all but postcode" in pat)
                floor_all = sum(n for pat, n in tot.items() if "all but postcode" in pat)
                print(f"  absent people queued whom someone in the index matches on every field "
                      f"but the postcode (indistinguishable from that person having moved): "
                      f"{floor} of {len(queued)} queued ({pct(floor, len(absent_ids)).strip()} "
                      f"of the absent; {floor_all} such absent people in all)")
                entry["absent_floor"] = {"queued_indistinguishable": floor,
                                         "indistinguishable": floor_all,
                                         "queued": len(queued), "absent": len(absent_ids)}
            if patterns:
                print("  field levels of the true pair where it was queued below someone else:")
                for (kind, pat), n in patterns.most_common(15):
                    print(f"    {n:>5}  {kind:<22} {pat}")
            entry["dars_blocking"] = {"found": dict(by_key), "only": dict(only)}
            entry["dars_misses"] = {f"{k} | {w}": n for (k, w), n in groups.items()}
            entry["dars_miss_patterns"] = {f"{k} | {w}": dict(c) for (k, w), c in
                                           by_group.items()}
        if args.curve:
            entry["curve"] = curve(args.curve, ddir, truth)
        summary[name] = entry
        with open(os.path.join(ddir, "results.json"), "w") as fh:
            json.dump(entry, fh, indent=1)
    with open(os.path.join(args.work, "results.json"), "w") as fh:
        json.dump(summary, fh, indent=1)


if __name__ == "__main__":
    main()
