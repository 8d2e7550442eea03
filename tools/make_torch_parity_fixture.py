#!/usr/bin/env python3
"""Writes tests/fixtures/torch_parity/: a tiny encoder-decoder made of torch.nn.Embedding,
torch.nn.LSTM and torch.nn.Linear (the module layout of shared/bench/pytorch_lstm_s2s.py),
saved by PyTorch as safetensors, with the logits PyTorch computes for a fixed input.
tests/torch_parity.rs loads the weights by name into nmt and must reproduce the logits.

Made with torch 2.15.0 and safetensors 0.8.0:
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch safetensors
    /tmp/torchenv/bin/python tools/make_torch_parity_fixture.py
"""
import json
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

SRC_V, TGT_V, EMB, HID, LAYERS = 11, 13, 6, 5, 2


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(SRC_V, EMB, padding_idx=0)
        self.tgt_emb = nn.Embedding(TGT_V, EMB, padding_idx=0)
        self.encoder = nn.LSTM(EMB, HID, num_layers=LAYERS)
        self.decoder = nn.LSTM(EMB, HID, num_layers=LAYERS)
        self.proj = nn.Linear(HID, TGT_V)
        for p in self.parameters():
            nn.init.uniform_(p, -0.5, 0.5)  # larger than 0.08 so every weight matters

    def forward(self, src, tgt_in):
        _, (h, c) = self.encoder(self.src_emb(src.flip(0)))  # source reversed
        y, _ = self.decoder(self.tgt_emb(tgt_in), (h, c))
        return self.proj(y)


def main():
    torch.manual_seed(2014)
    model = Seq2Seq().eval()
    src = torch.tensor([[4, 5, 6], [7, 8, 9], [10, 4, 5], [3, 6, 8]])  # (S=4, B=3)
    tgt_in = torch.tensor([[1, 1, 1], [4, 5, 6], [7, 8, 9], [10, 11, 12], [3, 4, 5]])  # (T=5, B=3)
    with torch.no_grad():
        logits = model(src, tgt_in)  # (T, B, V)
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "torch_parity")
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "model.safetensors"))
    config = {"format_version": 1, "src_vocab": SRC_V, "tgt_vocab": TGT_V, "emb": EMB, "hidden": HID,
              "layers": LAYERS, "pad_id": 0, "bos_id": 1, "eos_id": 2, "reverse_source": True}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "logits.json"), "w") as f:
        json.dump({"torch": torch.__version__, "src": src.tolist(), "tgt_in": tgt_in.tolist(),
                   "shape": list(logits.shape), "logits": logits.flatten().tolist()}, f)


if __name__ == "__main__":
    main()
