# nmt: the commands the README promises.
#   make demo   build, find or fetch Multi30k, train a small de->en model (~3 min on 2 cores),
#               translate a few test sentences beside their references, and score the test set.
#   make test   formatting, lints and the whole test suite.
#   make bench  nmt against PyTorch on the same model (installs torch into .venv-bench if needed).
#   make bench-kernels  the kernels module's products alone, in GFLOP/s.
#   make serve-bench  nmt serve under 1, 8 and 64 clients on loopback; writes docs/serving.md.
#   make fuzz   the cargo-fuzz targets (fuzz/), FUZZ_SECONDS each (default 600).
#   make cuda-toolchain  nvcc, CUDA headers and libraries from PyPI wheels into .tools/cuda.
#   make build-cuda      the CUDA binary ($(TARGET_DIR)/cuda/release/nmt), no GPU needed to build.

# The binary cargo builds: under $CARGO_TARGET_DIR when it is set, else ./target.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
NMT := $(TARGET_DIR)/release/nmt
DEMO := checkpoints/demo

# A team checkout sits beside shared/corpora/: use that copy of Multi30k unless NMT_CORPORA
# says otherwise (as .ci/run does), so `make demo` needs no download there.
ifeq ($(origin NMT_CORPORA),undefined)
ifneq ($(wildcard ../shared/corpora/multi30k),)
export NMT_CORPORA := $(abspath ../shared/corpora)
endif
endif

.PHONY: build demo test lint toy clean-demo bench bench-kernels fuzz serve-bench cuda-toolchain build-cuda cuda-check

# The CUDA build: its own target folder, so CPU and CUDA builds do not rebuild each other.
CUDA_TOOLS := .tools/cuda
CUDA_ENV := $(CUDA_TOOLS)/env.sh
CUDA_TARGET := $(TARGET_DIR)/cuda

build:
	cargo build --release

demo: build
	$(NMT) corpus fetch multi30k
	$(NMT) train --corpus multi30k --pair de-en --out $(DEMO) --overwrite \
		--layers 2 --hidden 256 --emb 256 --vocab-size 8000 \
		--optimizer adam --lr 0.002 --epochs 2
	$(NMT) eval --model $(DEMO) --corpus multi30k --pair de-en --split test_2016_flickr --beam 5 --show 8

lint:
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

# Tests that cannot run here (a tool missing) pass, and list themselves in SKIPPED: printed
# after the run with their count, so the log shows what did not run.
SKIPPED := $(TARGET_DIR)/tmp/skipped-tests.txt
test: lint
	@rm -f $(SKIPPED)
	cargo test --release
	@$(MAKE) --no-print-directory cuda-check
	@if [ -s $(SKIPPED) ]; then echo "SKIPPED $$(wc -l < $(SKIPPED)) test(s):"; sed 's/^/  skipped: /' $(SKIPPED); else echo "no test skipped"; fi

# Where `make cuda-toolchain` has run: lints the cuda feature's code (build scripts, kernels to
# PTX, link); its binary needs an NVIDIA driver to start, so its tests run on a GPU machine.
cuda-check:
	@if [ -e $(CUDA_ENV) ]; then \
		. ./$(CUDA_ENV) && CARGO_TARGET_DIR=$(CUDA_TARGET) cargo clippy --release --all-targets --features cuda -- -D warnings; \
	else \
		mkdir -p $(dir $(SKIPPED)) && echo "cuda feature check (no CUDA toolchain here: make cuda-toolchain installs one)" >> $(SKIPPED); \
	fi

cuda-toolchain:
	@mkdir -p $(CUDA_TOOLS)
	cargo fetch --quiet
	tools/cuda_toolchain.sh $(CUDA_TOOLS) > $(CUDA_ENV).tmp && mv $(CUDA_ENV).tmp $(CUDA_ENV)

build-cuda: cuda-toolchain
	. ./$(CUDA_ENV) && CARGO_TARGET_DIR=$(CUDA_TARGET) cargo build --release --features cuda

# nmt against the PyTorch baseline, side by side; writes docs/performance.md.
bench: build
	NMT_BIN=$(NMT) python3 tools/bench.py

# GFLOP/s of the kernels module alone, at the model's shapes (no PyTorch).
bench-kernels:
	cargo bench --bench kernels

# `nmt serve` with the demo model under load, beside `nmt translate --batch-size 32`.
serve-bench: build
	@[ -d $(DEMO) ] || $(MAKE) demo
	NMT_BIN=$(NMT) NMT_SERVE_MODEL=$(DEMO) python3 tools/serve_bench.py

# Fuzzing (fuzz/harness.rs says what each target reads): cargo-fuzz is installed into
# .tools/ on first use; libFuzzer runs on stable Rust without a sanitizer (-s none), with
# debug assertions (-a) so overflows count as crashes. Inputs it finds interesting grow
# under $(FUZZ_WORK)/corpus/, so a second run goes on from the first. A crash stops the run
# and leaves its input in fuzz/artifacts/<target>/: fix it, then keep the input under
# tests/fixtures/fuzz/<target>/, where `make test` replays it. The corpus target's memory
# grows ~2.5 MB a second (HF tokenizers keeps a few KB per tokenizer trained and used, and the
# target trains one per input), hence the 8 GB limit instead of libFuzzer's 2 GB.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= corpus checkpoint translate
CARGO_FUZZ := $(abspath .tools/cargo-fuzz/bin/cargo-fuzz)
FUZZ_WORK := $(abspath $(TARGET_DIR)/fuzz-work)
fuzz: $(CARGO_FUZZ)
	NMT_FUZZ_SEEDS=$(FUZZ_WORK)/seeds cargo test --release --test fuzz_regressions -- --ignored write_fuzz_seeds
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_WORK)/corpus/$$t && \
		$(CARGO_FUZZ) run -s none -a $$t $(FUZZ_WORK)/corpus/$$t $(FUZZ_WORK)/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=8192 -print_final_stats=1 || exit 1; \
	done

$(CARGO_FUZZ):
	cargo install --locked cargo-fuzz --version 0.13.1 --root $(abspath .tools/cargo-fuzz)

# Regenerate corpora/toy/ (deterministic).
toy:
	python3 tools/make_toy_corpus.py

clean-demo:
	rm -rf $(DEMO)
