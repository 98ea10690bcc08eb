#!/usr/bin/env bash
# d2c against the authors' PyTorch reference, on one machine, in one run.
#
#   scripts/bench-reference.sh --ref DIR [--model DIR] [--venv DIR] [--threads N]
#                              [--prompt-len N] [--gen-length N] [--block-length N] [--no-narrow]
#
# DIR of --ref: a checkout of Kamichanw/d2Cache at commit 72feb60 (docs/benchmarks.md says how
# to get it). The script
#   1. sets up PyTorch 2.7.1 and the reference's few imports in a local virtualenv (PyPI only;
#      once, ~2.8 GB: the PyPI wheel brings CUDA runtime wheels, it runs on the CPU),
#   2. writes one LLaDA-shaped folder both load (`d2c make-model`, default d_model 1024,
#      8 layers, 16 heads, SwiGLU 2816, vocab 32768: the README's bench model),
#   3. times the reference (scripts/bench_reference.py) and d2c on the same prompt ids,
#      without a cache and with d²Cache, f32, and d2c also with bf16 weights and with its own
#      kernels narrowed to AVX2 (D2C_SIMD=avx2; --no-narrow skips that),
#   4. prints a Markdown table with the CPU, the instruction sets and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

ref="" model="bench-model" venv="target/bench-reference-venv" threads=2
prompt_len=128 gen=256 block=32 narrow=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --prompt-len) prompt_len="$2"; shift 2 ;;
    --gen-length) gen="$2"; shift 2 ;;
    --block-length) block="$2"; shift 2 ;;
    --no-narrow) narrow=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench-reference.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$ref" ] || [ ! -f "$ref/src/generation/vanilla.py" ]; then
  echo "bench-reference.sh: --ref must name a checkout of Kamichanw/d2Cache (commit 72feb60): no src/generation/vanilla.py under \`$ref\`" >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv (PyTorch 2.7.1 from PyPI) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.7.1 transformers==4.52.4 accelerate==1.8.1 hydra-core omegaconf loguru python-dotenv pydantic dill tqdm
fi

cargo build --release -q
d2c=target/release/d2c
[ -f "$model/model.safetensors" ] || $d2c make-model --out "$model" --d-model 1024 --layers 8 --heads 16 --mlp-hidden 2816 --vocab 32768 >&2

# Seeded prompt ids below the mask and EOS ids, the same for both sides.
ids=$(python3 - "$model/config.json" "$prompt_len" <<'EOF'
import json, random, sys
cfg = json.load(open(sys.argv[1]))
hi = min(cfg["mask_token_id"], cfg["eos_token_id"])
r = random.Random(0)
print(",".join(str(r.randrange(1, hi)) for _ in range(int(sys.argv[2]))))
EOF
)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "timing the reference ..." >&2
"$venv/bin/python" scripts/bench_reference.py --ref "$ref" --model-dir "$model" --prompt-ids "$ids" \
  --gen-length "$gen" --block-length "$block" --threads "$threads" > "$out/reference.json"

d2c_run() { # NAME POLICY DTYPE [ENV=VALUE]
  local name="$1" policy="$2" dtype="$3"; shift 3
  echo "timing d2c $name ..." >&2
  env RAYON_NUM_THREADS="$threads" "$@" $d2c run --model "$model" --policy "$policy" --prompt-ids "$ids" \
    --gen-length "$gen" --block-length "$block" --dtype "$dtype" --json --quiet > "$out/d2c-$name.json"
}
d2c_run nocache policies/vanilla.pol f32
d2c_run d2cache policies/d2cache.pol f32
d2c_run nocache-bf16 policies/vanilla.pol bf16
d2c_run d2cache-bf16 policies/d2cache.pol bf16
if [ "$narrow" = 1 ]; then
  d2c_run nocache-avx2 policies/vanilla.pol f32 D2C_SIMD=avx2
  d2c_run d2cache-avx2 policies/d2cache.pol f32 D2C_SIMD=avx2
fi

python3 - "$out" "$($d2c --version)" "$(D2C_SIMD=avx2 $d2c --version)" <<'EOF'
import datetime, glob, json, os, platform, sys
out, wide, narrow = sys.argv[1], sys.argv[2], sys.argv[3]
ref = json.load(open(os.path.join(out, "reference.json")))
d2c = {os.path.basename(p)[4:-5]: json.load(open(p)) for p in glob.glob(os.path.join(out, "d2c-*.json"))}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
isa = "AVX-512 (" + ", ".join(f for f in ("avx512f", "avx512_bf16", "avx512_vnni") if f in flags) + ")" if "avx512f" in flags else "AVX2 only"
print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: {cpu}, {os.cpu_count()} cores, {isa}; "
      f"torch {ref['torch']} ({ref['cpu_capability']}), {ref['threads']} threads; {wide.strip()}")
print(f"prompt {ref['prompt_len']}, gen {ref['gen_length']}, block {ref['block_length']}\n")
print("| run | reference tokens/s | d2c tokens/s | d2c / reference | same tokens as reference |")
print("|---|---|---|---|---|")
rows = [("no cache, f32", "nocache", "nocache"), ("d²Cache, f32", "d2cache", "d2cache"),
        ("no cache, bf16 weights", "nocache", "nocache-bf16"), ("d²Cache, bf16 weights", "d2cache", "d2cache-bf16"),
        ("no cache, f32, D2C_SIMD=avx2", "nocache", "nocache-avx2"), ("d²Cache, f32, D2C_SIMD=avx2", "d2cache", "d2cache-avx2")]
for label, r, d in rows:
    if d not in d2c or r not in ref["runs"]:
        continue
    rt, dt = ref["runs"][r]["tokens_per_s"], d2c[d]["tokens_per_s"]
    a, b = ref["runs"][r]["tokens"], d2c[d]["generated_ids"][0]
    same = sum(x == y for x, y in zip(a, b)) / max(len(a), 1)
    print(f"| {label} | {rt:.2f} | {dt:.2f} | {dt / rt:.2f}x | {100 * same:.1f}% |")
if "nocache-bf16" in d2c:
    print(f"\nbf16 weights / f32: no cache {d2c['nocache-bf16']['tokens_per_s'] / d2c['nocache']['tokens_per_s']:.2f}x, "
          f"d²Cache {d2c['d2cache-bf16']['tokens_per_s'] / d2c['d2cache']['tokens_per_s']:.2f}x")
if "nocache-avx2" in d2c:
    print(f"AVX2 rows: {narrow.strip()}")
EOF
