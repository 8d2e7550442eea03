#!/usr/bin/env python3
"""Loads an nmt run folder into the PyTorch reference model (the module layout of
shared/bench/pytorch_lstm_s2s.py) and translates one sentence greedily, to show that nmt's
weights are plain PyTorch weights.

Usage: python3 tools/load_in_pytorch.py RUN_DIR "Ein Hund läuft im Schnee."
Needs: pip install torch tokenizers safetensors
"""
import json
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file
from tokenizers import Tokenizer


class Seq2Seq(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.src_emb = nn.Embedding(cfg["src_vocab"], cfg["emb"])
        self.tgt_emb = nn.Embedding(cfg["tgt_vocab"], cfg["emb"])
        self.encoder = nn.LSTM(cfg["emb"], cfg["hidden"], num_layers=cfg["layers"])
        self.decoder = nn.LSTM(cfg["emb"], cfg["hidden"], num_layers=cfg["layers"])
        self.proj = nn.Linear(cfg["hidden"], cfg["tgt_vocab"])


@torch.no_grad()
def translate(run, sentence, max_ratio=2.0):
    cfg = json.load(open(f"{run}/config.json"))
    model = Seq2Seq(cfg).eval()
    model.load_state_dict(load_file(f"{run}/model.safetensors"))
    src_tok = Tokenizer.from_file(f"{run}/src_tokenizer.json")
    tgt_tok = Tokenizer.from_file(f"{run}/tgt_tokenizer.json")
    ids = src_tok.encode(sentence, add_special_tokens=False).ids
    src = torch.tensor(ids).unsqueeze(1)  # (S, 1)
    if cfg["reverse_source"]:
        src = src.flip(0)
    _, state = model.encoder(model.src_emb(src))
    tok, out = cfg["bos_id"], []
    for _ in range(int(torch.tensor(max_ratio * max(len(ids), 1)).ceil()) + 1):
        y, state = model.decoder(model.tgt_emb(torch.tensor([[tok]])), state)
        tok = int(model.proj(y[0, 0]).argmax())
        if tok == cfg["eos_id"]:
            break
        out.append(tok)
    return tgt_tok.decode(out)


if __name__ == "__main__":
    print(translate(sys.argv[1], sys.argv[2]))
