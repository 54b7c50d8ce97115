#!/usr/bin/env bash
# Bench: `dars run` end to end at a stated scale, on synthetic data.
#
#   benches/run_at_scale.sh [PEOPLE] [COHORT] [EPISODES]   (default 2000000 200000 20000000)
#
# Builds dars with the release profile (every dependency at opt-level 3; the
# test build has them at 1, README "Tests"), makes the data with `dars synth` (timed too),
# runs the shipped example agreement's outputs against it with a local
# destination, and prints wall time and peak memory: the whole process from
# /usr/bin/time, and per stage from the run's summary.json (peak RSS is
# reset between stages through /proc/self/clear_refs).
# Needs: /usr/bin/time (apt-get install time). Data goes to $BENCH_DIR
# (default /var/tmp/dars-bench), outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
people=${1:-2000000}; cohort=${2:-200000}; episodes=${3:-20000000}
dir=${BENCH_DIR:-/var/tmp/dars-bench}/p${people}-c${cohort}-e${episodes}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dars-target}"
cargo build --release --locked --bin dars
mkdir -p "$dir/keys" "$dir/outbox"
cp "$CARGO_TARGET_DIR/release/dars" "$dir/dars"
dars="$dir/dars"
if [ ! -f "$dir/data/truth.csv" ]; then
  echo "== dars synth --people $people --cohort $cohort --episodes $episodes"
  /usr/bin/time -f 'synth: %e s wall, %M KiB peak RSS' "$dars" synth --out "$dir/data" \
    --people "$people" --cohort "$cohort" --episodes "$episodes" --seed 1
fi
cp testdata/keys/release_signing_ed25519 testdata/keys/recipient_TEST-ONLY.agepub "$dir/keys/"
chmod 600 "$dir/keys/release_signing_ed25519"
cat > "$dir/site.toml" <<TOML
[sources]
demographics = "data/site/demographics.parquet"
objections = "data/site/objections.parquet"
[datasets.hes_apc]
path = "data/site/hes_apc.parquet"
key = "person_id"
[keys]
signing_key = "keys/release_signing_ed25519"
signer = "releases@example.nhs.uk"
[work]
dir = "work"
TOML
sed -e 's|^path *= *"../../testdata/cohort.csv"|path = "data/cohort.csv"|' \
    -e 's|^destination *=.*|destination = "file://outbox"|' \
    config/agreements/DARS-NIC-000001-DEMO1-01.toml > "$dir/agreement.toml"
echo "== dars run (people $people, cohort $cohort, episodes $episodes)"
/usr/bin/time -f 'run: %e s wall, %M KiB peak RSS' "$dars" --site "$dir/site.toml" --log-format json \
  run "$dir/agreement.toml" 2> "$dir/run.log" || { tail -5 "$dir/run.log"; exit 1; }
tail -1 "$dir/run.log"
summary=$(ls -t "$dir"/work/*/runs/*/summary.json | head -1)
python3 - "$summary" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{'stage':<12}{'seconds':>10}{'peak MiB':>10}")
for st in s["stages"]:
    print(f"{st['stage']:<12}{st['seconds']:>10.2f}{(st['peak_rss_mib'] or 0):>10}")
print("linkage:", s["linkage"])
print("objections:", s["objections"])
PY
