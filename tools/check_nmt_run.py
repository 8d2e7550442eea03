#!/usr/bin/env python3
"""Checks that an nmt run folder loads unchanged with the Python `tokenizers` and
`safetensors` packages. Prints one JSON object for tests/python_interop.rs to compare.

Usage: python3 tools/check_nmt_run.py RUN_DIR "a sentence"
Needs: pip install tokenizers safetensors numpy
"""
import json
import sys

from safetensors import safe_open
from tokenizers import Tokenizer


def main():
    run, sentence = sys.argv[1], sys.argv[2]
    tok = Tokenizer.from_file(f"{run}/src_tokenizer.json")
    ids = tok.encode(sentence, add_special_tokens=False).ids
    with safe_open(f"{run}/model.safetensors", framework="numpy") as f:
        meta = f.metadata() or {}
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
        bias_sum = float(f.get_tensor("proj.bias").astype("float64").sum())
    print(json.dumps({
        "ids": ids,
        "round_trip": tok.decode(ids) == sentence,
        "special": [tok.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<unk>")],
        "config": json.loads(meta.get("nmt_config", "{}")),
        "shapes": shapes,
        "proj_bias_sum": bias_sum,
    }))


if __name__ == "__main__":
    main()
