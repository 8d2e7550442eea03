# nmt: the commands the README promises.
#   make demo   build, find or fetch Multi30k, train a small de->en model (~3 min on 2 cores),
#               translate a few test sentences beside their references, and score the test set.
#   make test   formatting, lints and the whole test suite.
#   make bench  nmt against PyTorch on the same model (installs torch into .venv-bench if needed).
#   make bench-kernels  the kernels module's products alone, in GFLOP/s.

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

.PHONY: build demo test lint toy clean-demo bench bench-kernels

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
	@if [ -s $(SKIPPED) ]; then echo "SKIPPED $$(wc -l < $(SKIPPED)) test(s):"; sed 's/^/  skipped: /' $(SKIPPED); else echo "no test skipped"; fi

# nmt against the PyTorch baseline, side by side; writes docs/performance.md.
bench: build
	NMT_BIN=$(NMT) python3 tools/bench.py

# GFLOP/s of the kernels module alone, at the model's shapes (no PyTorch).
bench-kernels:
	cargo bench --bench kernels

# Regenerate corpora/toy/ (deterministic).
toy:
	python3 tools/make_toy_corpus.py

clean-demo:
	rm -rf $(DEMO)
