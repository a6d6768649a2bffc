#!/usr/bin/env bash
# The gateway's latency and throughput bench (a bench, not a test): everything on loopback, every
# load bounded in count and time.
#
#   benches/gateway/run.sh [--seconds 20] [--routellm] [--embed-threads N]
#                          [--max-concurrent-embeds N] [--embed-repeat 2000] [--rate 100]
#                          [--embed-pinning auto|always|never] [--shuffle] [--no-build]
#
# One run measures, against one stub upstream (pointsman-testkit stub) with a saved MF router
# (trained here on llmrouter_dc with its default config) routing among the dataset's nine models:
#   direct     the stub called directly, at 100 requests/s (the baseline)
#   routed     the same requests through `pointsman serve`, model "pointsman", at 100 requests/s
#   pass       the same requests through the gateway to a concrete model (no routing)
#   embed      the in-process embedder alone on the same texts, one thread
#   embed_gw   the same with the gateway's threads per embedding (`routing.embed_threads`; by
#              default the cores, at most 4: a text embedded alone is split over all of them)
#   embed_gw_paced  the same, one embedding started every 1/rate s (the requests' pace, idle
#              in between) instead of back to back, for --seconds (at most --embed-repeat texts)
#   short_*    the same for one short prompt (benches/prompts.json "short", 12-13 word pieces)
#   max        the highest sustained rate (closed loop, 32 connections), with the gateway's RSS
# and, with --routellm, RouteLLM's OpenAI-compatible server (PyPI routellm, `random` router,
# forwarding to the same stub) at 100 requests/s, when it installs here.
#
# Added latency over the stub = routed − direct; beyond the embedder = routed − direct − embed
# (medians and 99th percentiles of each distribution, same run), four ways:
# - "separately, with the gateway's threads" subtracts the percentile of `embed_gw`, the embedder
#   timed alone with the gateway's own setting, back to back: the strict reading (its cores
#   kept busy, so it does not pay for idle cores as a request in the gateway does);
# - "separately, one thread" subtracts `embed`'s (the gateway's setting before 2026-12-06);
# - "at the requests' pace" subtracts `embed_gw_paced`'s: the embedder alone under the same
#   arrivals (its cores idle between requests, as in the gateway) rather than kept busy;
# - "per request" takes each routed request's latency less the gateway's own time embedding that
#   request's text (its `Server-Timing: embed;dur=`), then the percentile, less direct's. With
#   embeddings split over a shared pool that time is not the text's alone: a pool thread waiting
#   inside one embedding may run another request's, so this way undercounts contention.
# Run it on a quiet machine with RAYON_NUM_THREADS=1 (set here); it prints one JSON line per
# measurement and a summary. --embed-threads / --max-concurrent-embeds set the gateway's
# `routing.embed_threads` and `routing.max_concurrent_embeds` (default 0 for both: the gateway's
# defaults), to compare settings, and --embed-pinning its `routing.embed_pinning` (default auto,
# the gateway's default; the embedder-alone measures use the same); --rate (> 0) replaces the 100 requests/s of every open-loop
# load; --embed-repeat is how many texts each embedder-alone measure times; --shuffle sends the
# prompts in a seeded random order instead of the dataset's, where they come grouped by task
# (commongen's long prompts one after another: at 100 requests/s on a slower core a burst the
# embedder falls behind on), as traffic from many tasks at once would mix them; every measure
# uses the same order; --no-build uses the release binaries already built
# (`cargo test --workspace --release` builds them with the test suite's features, which a build
# here would compile again). The test command runs it once with --no-build --seconds 1
# --embed-repeat 100 --shuffle, so that it cannot rot.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=20
ROUTELLM=0
EMBED_THREADS=0
MAX_EMBEDS=0
PINNING=auto
EMBED_REPEAT=2000
RATE=100
BUILD=1
SHUFFLE=0
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --routellm) ROUTELLM=1; shift ;;
        --embed-threads) EMBED_THREADS=$2; shift 2 ;;
        --max-concurrent-embeds) MAX_EMBEDS=$2; shift 2 ;;
        --embed-pinning) PINNING=$2; shift 2 ;;
        --embed-repeat) EMBED_REPEAT=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --shuffle) SHUFFLE=1; shift ;;
        *) echo "usage: $0 [--seconds N] [--routellm] [--embed-threads N]" \
                "[--max-concurrent-embeds N] [--embed-pinning auto|always|never] [--embed-repeat N]" \
                "[--rate N] [--shuffle] [--no-build]" >&2; exit 2 ;;
    esac
done
case $PINNING in auto|always|never) ;; *) echo "--embed-pinning takes auto, always or never, not $PINNING" >&2; exit 2 ;; esac
python3 -c 'import math, sys; r = float(sys.argv[1]); sys.exit(0 if math.isfinite(r) and 0 < r <= 10000 else 1)' \
    "$RATE" 2>/dev/null || {
    echo "--rate takes a number of requests per second in (0, 10000], not $RATE" >&2; exit 2
}
export RAYON_NUM_THREADS=1
DATA=${POINTSMAN_DATA_DIR:-$(cd .. && pwd)/shared/data}
if [ "$BUILD" = 1 ]; then
    cargo build --release --quiet -p pointsman-cli -p pointsman-gateway --bins
fi
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
PM=$target/release/pointsman
KIT=$target/release/pointsman-testkit
for bin in "$PM" "$KIT"; do
    [ -x "$bin" ] || { echo "$bin is missing: run without --no-build" >&2; exit 2; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Starts "$@" in the background (stdout to $tmp/$name.out) and sets ADDR to the first
# http://127.0.0.1:PORT it prints.
start() {
    local name=$1; shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    local pid=$!
    pids+=($pid)
    for _ in $(seq 600); do
        ADDR=$(grep -oE 'http://[0-9.]+:[0-9]+' "$tmp/$name.out" "$tmp/$name.err" 2>/dev/null | head -1 | cut -d: -f2- || true)
        [ -n "$ADDR" ] && return
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start: $(cat "$tmp/$name.err")" >&2
    return 1
}

echo "==> MF router on llmrouter_dc (default config)" >&2
"$PM" --quiet train --data "$DATA/llmrouter_dc" --router mf --config '{}' --out "$tmp/mf.safetensors"
python3 - "$DATA/llmrouter_dc/llmrouter_dc.jsonl.gz" "$tmp" "$SHUFFLE" <<'PY'
import gzip, json, random, sys
rows = [json.loads(l) for l in gzip.open(sys.argv[1], "rt")]
# Test prompts of up to 200 characters (259 of the 500): at 100 requests/s on two cores the
# embedder must keep up (the median test prompt, 190 characters, takes ~10 ms to embed).
prompts = [r["prompt"] for r in rows if r["split"] == "test" and len(r["prompt"]) <= 200]
if sys.argv[3] == "1":
    random.Random(0).shuffle(prompts)
json.dump(prompts, open(sys.argv[2] + "/prompts.json", "w"))
models = json.load(open(sys.argv[1].rsplit("/", 1)[0] + "/models.json"))["models"]
models = sorted(models)
json.dump(models, open(sys.argv[2] + "/models.json", "w"))
short = json.load(open("benches/prompts.json"))["short"]
json.dump([short], open(sys.argv[2] + "/short.json", "w"))
PY

start stub "$KIT" stub --name stub
STUB=$ADDR
{
    echo 'listen = "127.0.0.1:0"'
    echo 'router = "mf.safetensors"'
    echo '[limits]'
    echo 'shutdown_grace_ms = 5000'
    echo '[routing]'
    echo "embed_threads = $EMBED_THREADS"
    echo "embed_pinning = \"$PINNING\""
    echo "max_concurrent_embeds = $MAX_EMBEDS"
    python3 -c '
import json, sys
for m in json.load(open(sys.argv[1])):
    print(f"[[upstreams]]\nmodel = \"{m}\"\nbase_url = \"{sys.argv[2]}/v1\"\nmax_concurrency = 256")
' "$tmp/models.json" "$STUB"
} >"$tmp/gateway.toml"
start gateway "$PM" serve --config "$tmp/gateway.toml"
GW=$ADDR
GW_PID=${pids[-1]}
MODEL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0])' "$tmp/models.json")

load() { # label url model prompts [extra args]
    local label=$1 url=$2 model=$3 prompts=$4; shift 4
    "$KIT" load --label "$label" --url "$url/v1/chat/completions" --model "$model" \
        --prompts "$prompts" --seconds "$SECONDS_EACH" --warmup 2 "$@" | tee -a "$tmp/results.jsonl"
}

echo "==> $RATE requests/s, $SECONDS_EACH s each" >&2
load direct "$STUB" "$MODEL" "$tmp/prompts.json" --rate "$RATE"
load routed "$GW" pointsman "$tmp/prompts.json" --rate "$RATE"
load pass "$GW" "$MODEL" "$tmp/prompts.json" --rate "$RATE"
"$KIT" embed --label embed --prompts "$tmp/prompts.json" --repeat "$EMBED_REPEAT" | tee -a "$tmp/results.jsonl"
"$KIT" embed --label embed_gw --threads "$EMBED_THREADS" --pinning "$PINNING" --prompts "$tmp/prompts.json" --repeat "$EMBED_REPEAT" |
    tee -a "$tmp/results.jsonl"
# The same at the requests' pace: one embedding started every 1/rate s, idle in between, after
# the same 2 s warm-up as the loads (so the texts timed are the ones routed's measured requests
# carried).
paced=$(awk -v r="$RATE" -v s="$SECONDS_EACH" -v m="$EMBED_REPEAT" \
    'BEGIN { n = int(r * s); if (n > m) n = m; if (n < 1) n = 1; print n }')
"$KIT" embed --label embed_gw_paced --threads "$EMBED_THREADS" --pinning "$PINNING" --rate "$RATE" --warmup 2 \
    --prompts "$tmp/prompts.json" --repeat "$paced" | tee -a "$tmp/results.jsonl"
load short_direct "$STUB" "$MODEL" "$tmp/short.json" --rate "$RATE"
load short_routed "$GW" pointsman "$tmp/short.json" --rate "$RATE"
"$KIT" embed --label short_embed --prompts "$tmp/short.json" --repeat "$EMBED_REPEAT" | tee -a "$tmp/results.jsonl"
"$KIT" embed --label short_embed_gw --threads "$EMBED_THREADS" --pinning "$PINNING" --prompts "$tmp/short.json" --repeat "$EMBED_REPEAT" |
    tee -a "$tmp/results.jsonl"

echo "==> highest sustained rate (closed loop, 32 connections)" >&2
load max "$GW" pointsman "$tmp/prompts.json" --rate 0 --concurrency 32 &
lp=$!
rss=0
while kill -0 $lp 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' /proc/"$GW_PID"/status)
    [ "$r" -gt "$rss" ] && rss=$r
    sleep 0.5
done
wait $lp
echo "{\"label\": \"max_rss\", \"rss_mib\": $((rss / 1024))}" | tee -a "$tmp/results.jsonl"

if [ "$ROUTELLM" = 1 ]; then
    # ROUTELLM_VENV reuses a virtual environment that has routellm[serve] (it pulls torch: GBs).
    rl=${ROUTELLM_VENV:-$tmp/rl}
    echo "==> RouteLLM (random router) from $rl" >&2
    if [ -x "$rl/bin/python" ] && "$rl/bin/python" -c 'import routellm' 2>/dev/null ||
        { python3 -m venv "$rl" && timeout 1800 "$rl/bin/pip" install --quiet "routellm[serve]==0.2.0"; }; then
        echo 'random: {}' >"$tmp/rl.yaml"
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        # RouteLLM's server always binds 0.0.0.0 (uvicorn.run(host="0.0.0.0")); the load goes
        # to 127.0.0.1 only.
        if OPENAI_API_KEY=unused LITELLM_LOCAL_MODEL_COST_MAP=True start routellm \
            "$rl/bin/python" -m routellm.openai_server --routers random --config "$tmp/rl.yaml" \
            --port "$port" --workers 1 --strong-model "openai/$MODEL" --weak-model "openai/$MODEL" \
            --base-url "$STUB/v1" --api-key unused; then
            load routellm "http://127.0.0.1:$port" router-random-0.5 "$tmp/prompts.json" --rate "$RATE"
        else
            echo "RouteLLM's server did not start (see above)" >&2
        fi
    else
        echo "routellm could not be installed here" >&2
    fi
fi

python3 - "$tmp/results.jsonl" <<'PY'
import json, sys
r = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    r[d["label"]] = d
def get(label, k):
    return r.get(label, {}).get(k, float("nan"))
print("\nsummary (ms)")
for p in ("p50_ms", "p99_ms"):
    per_request = get("routed", "beyond_embed_" + p) - get("direct", p)
    strict = get('routed', p) - get('direct', p) - get('embed_gw', p)
    one = get('routed', p) - get('direct', p) - get('embed', p)
    paced = get('routed', p) - get('direct', p) - get('embed_gw_paced', p)
    print(f"  {p[:3]} beyond the embedder with the gateway's threads (embed_gw {get('embed_gw', p):.3f}):"
          f" {strict:.3f}  (one thread: {one:.3f}; per request: {per_request:.3f};"
          f" at the requests' pace, embed_gw_paced {get('embed_gw_paced', p):.3f}: {paced:.3f})")
for p in ("p50_ms", "p99_ms"):
    added = get("routed", p) - get("direct", p)
    print(f"  {p[:3]}: direct {get('direct', p):.3f}  routed {get('routed', p):.3f}  pass {get('pass', p):.3f}"
          f"  embed (one thread) {get('embed', p):.3f}  added {added:.3f}"
          f"  pass added {get('pass', p) - get('direct', p):.3f}")
print(f"  short prompt: added p50 {get('short_routed', 'p50_ms') - get('short_direct', 'p50_ms'):.3f}"
      f" (embed p50 {get('short_embed', 'p50_ms'):.3f} on one thread,"
      f" {get('short_embed_gw', 'p50_ms'):.3f} with the gateway's threads)")
print(f"  embedder's context switches per text (threads pinned: {r.get('embed_gw', {}).get('pinned')}):"
      f" back to back {get('embed_gw', 'context_switches_per_embed'):.1f},"
      f" at the requests' pace {get('embed_gw_paced', 'context_switches_per_embed'):.1f}")
print(f"  max sustained: {get('max', 'rate'):.0f} requests/s ({get('max', 'errors')} errors), "
      f"gateway RSS {r.get('max_rss', {}).get('rss_mib')} MiB")
if "routellm" in r:
    print(f"  RouteLLM random: p50 {get('routellm', 'p50_ms'):.3f} p99 {get('routellm', 'p99_ms'):.3f}"
          f" added p50 {get('routellm', 'p50_ms') - get('direct', 'p50_ms'):.3f}")
late = {l: d["late"] for l, d in r.items() if d.get("late")}
if late:
    print(f"  warning: the driver skipped requests it had no slot for, in the warm-up or the measured part"
          f" (there, figures are biased low): {late}")
# A measurement missing, or a load whose requests failed, fails the run (the test command runs it).
labels = ["direct", "routed", "pass", "embed", "embed_gw", "embed_gw_paced", "short_direct", "short_routed",
          "short_embed", "short_embed_gw", "max", "max_rss"]
bad = [l for l in labels if l not in r or r[l].get("errors", 0) or r[l].get("ok", 1) == 0]
if bad:
    sys.exit(f"benches/gateway/run.sh: missing or failed measurements: {', '.join(bad)}")
PY
