#!/usr/bin/env bash
# The on-device check of the CUDA path (docs/gpu.md), for a machine with an NVIDIA GPU, CUDA 13
# libraries and PyTorch, but no Rust toolchain: build here with `make build-cuda`, carry the
# binary, run this from the repository root there. Writes $OUT (default ./gpu-check)/
# check.log and bench.jsonl.
#   1. the card, the driver, and any library the binary cannot find;
#   2. parity: the same seeded training steps on the CPU and on the GPU (loss before and after
#      two SGD updates: forward and gradients);
#   3. search parity: beam 5 with a toy model (plain and with attention) translated on the CPU
#      and on the GPU, where each step's ranking runs as one kernel;
#   4. speed: nmt bench against the PyTorch baseline (cuDNN) on the GPU, at make bench's shape
#      and at the paper's (1000 cells and embeddings, 4+4 layers, 80,000 words, batch 128).
set -u
NMT=${NMT_BIN:-target/cuda/release/nmt}
OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
LOG=$OUT/check.log
JSON=$OUT/bench.jsonl
exec > >(tee -a "$LOG") 2>&1

# The CUDA libraries of the machine's PyTorch install (pip's nvidia-* wheels).
libs=$("$PYTHON" - <<'EOF'
import glob, os, site
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for so in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(so))
print(":".join(sorted(dirs)))
EOF
)
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

echo "== device"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
if ldd "$NMT" | grep "not found"; then
    echo "FAIL: the binary cannot load the libraries above (it links CUDA 13's)"
    exit 1
fi
"$NMT" --version

echo "== parity: CPU and GPU, the same seeded steps"
for dev in cpu cuda; do
    "$NMT" bench train --device $dev --layers 2 --hidden 128 --emb 128 --src-vocab 1000 \
        --tgt-vocab 1000 --batch 16 --steps 3 --warmup 0 --label parity-$dev --json "$JSON" || exit 1
done
"$PYTHON" - "$JSON" <<'EOF' || exit 1
import json, sys
recs = {r["label"]: r["result"] for r in map(json.loads, open(sys.argv[1])) if r.get("label", "").startswith("parity")}
cpu, gpu = recs["parity-cpu"], recs["parity-cuda"]
for key in ["loss_first", "loss_last"]:
    rel = abs(cpu[key] - gpu[key]) / abs(cpu[key])
    print(f"{key}: cpu {cpu[key]:.6f} cuda {gpu[key]:.6f} relative difference {rel:.2e}")
    if rel > 1e-4:
        sys.exit(f"FAIL: {key} differs by {rel:.2e}")
EOF

echo "== search parity: beam 5 on the CPU and on the GPU (ranking on the device)"
for att in none general; do
    model=$OUT/toy-$att
    "$NMT" train --src-file corpora/toy/train.de --tgt-file corpora/toy/train.en --out "$model" \
        --overwrite --layers 2 --hidden 64 --emb 64 --vocab-size 400 --epochs 60 --optimizer adam --lr 0.01 \
        --attention $att --device cpu --quiet || exit 1
    for dev in cpu cuda; do
        "$NMT" translate --model "$model" --input corpora/toy/test.de --beam 5 --format tsv \
            --device $dev --output "$OUT/search-$att-$dev.tsv" --overwrite || exit 1
    done
    "$PYTHON" - "$OUT/search-$att-cpu.tsv" "$OUT/search-$att-cuda.tsv" "$att" <<'EOF' || exit 1
import sys
cpu, gpu = (open(p).read().splitlines() for p in sys.argv[1:3])
same = sum(a.split("\t")[3:] == b.split("\t")[3:] for a, b in zip(cpu, gpu))
worst = max(abs(float(a.split("\t")[2]) - float(b.split("\t")[2])) for a, b in zip(cpu, gpu))
print(f"attention {sys.argv[3]}: {same} of {len(cpu)} translations identical, largest score difference {worst:.2e}")
# Float rounding may flip a near-tie; more than one in twenty would be a bug.
if len(cpu) != len(gpu) or same < 0.95 * len(cpu):
    sys.exit("FAIL: CPU and GPU beam search disagree")
EOF
done

echo "== speed: nmt against PyTorch (cuDNN), both on the GPU"
bench() {  # label, then the flags both tools share
    local label=$1; shift
    "$NMT" bench "$@" --device cuda --label "nmt $label" --json "$JSON"
    "$PYTHON" tools/pytorch_lstm_s2s_attention.py "$@" --device cuda --label "torch $label" --json "$JSON"
}
bench "train 4x256" train --layers 4 --hidden 256 --emb 256 --batch 64 --steps 20
bench "beam5 b32 4x256" decode-beam --layers 4 --hidden 256 --emb 256 --batch 32 --beam 5 --steps 10
bench "greedy b32 4x256" decode-greedy --layers 4 --hidden 256 --emb 256 --batch 32 --steps 10
bench "train paper" train --layers 4 --hidden 1000 --emb 1000 --src-vocab 80000 \
    --tgt-vocab 80000 --batch 128 --steps 10
bench "beam5 b32 paper" decode-beam --layers 4 --hidden 1000 --emb 1000 --src-vocab 80000 \
    --tgt-vocab 80000 --batch 32 --beam 5 --steps 5
# Mixed precision, nmt only (PyTorch's row above is its default: cuDNN's LSTM in TF32).
for p in tf32 bf16; do
    "$NMT" bench train --layers 4 --hidden 1000 --emb 1000 --src-vocab 80000 --tgt-vocab 80000 \
        --batch 128 --steps 10 --precision $p --device cuda --label "nmt-$p train paper" --json "$JSON"
done

"$PYTHON" - "$JSON" <<'EOF'
import json, sys
rows = {}
for r in map(json.loads, open(sys.argv[1])):
    tool, _, case = r.get("label", "").partition(" ")
    res = r["result"]
    rate = res.get("tgt_tok_per_s_median") or res.get("sent_per_s_median")
    rows.setdefault(case, {})[tool] = rate
print("| case | nmt | PyTorch | nmt / PyTorch |")
print("|---|---:|---:|---:|")
for case, t in rows.items():
    for tool in sorted(k for k in t if k.startswith("nmt")):
        if "torch" in t:
            name = case if tool == "nmt" else f"{case} ({tool[4:]})"
            print(f"| {name} | {t[tool]:.1f} | {t['torch']:.1f} | {t[tool] / t['torch']:.2f} |")
EOF
