#!/usr/bin/env python3
"""PyTorch CPU baseline for a Sutskever-style stacked-LSTM encoder-decoder NMT model.

nmt's copy of ../shared/bench/pytorch_lstm_s2s.py (which stays as it is) with one addition:
--attention dot|general gives the decoder Luong et al. (2015) global attention with input
feeding, as OpenNMT-py builds it: nn.LSTMCell layers stepped one time step at a time (input
feeding makes step t read step t-1's attentional vector), scores over the encoder's top-layer
outputs, h~ = tanh(linear_out([context, h])) into the projection and the next step's input.
Without --attention it is the shared script's model, step for step. A second addition,
--device cuda, runs it on a GPU (nn.LSTM is then cuDNN's fused LSTM), synchronising the device
before every time is read: the baseline of nmt's CUDA path (docs/gpu.md).

Model: src embedding -> nn.LSTM(L) encoder (source reversed, as in Sutskever et al. 2014);
the encoder's final (h, c) of every layer initialises an nn.LSTM(L) decoder run over
target embeddings with teacher forcing; Linear(H -> tgt_vocab); cross-entropy ignoring pad.
Random token ids (seeded), fixed lengths, so every token is a real (non-pad) token.

Modes:
  train          forward + backward + clip_grad_norm_(5) + SGD(lr) per step.
                 Reports target tokens/s and ms/step (median over timed steps, after warm-up).
  decode-greedy  batch greedy decoding, max_len steps; reports sentences/s.
  decode-beam    batch beam search (beam flattened into the batch dim), max_len steps;
                 reports sentences/s.

Output: a human-readable line plus (with --json FILE) one JSON object appended per run.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2
FIRST_REAL = 3  # random ids are drawn from [3, vocab)


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, emb, hidden, layers, attention="none"):
        super().__init__()
        self.attention = attention
        self.src_emb = nn.Embedding(src_vocab, emb, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, emb, padding_idx=PAD)
        self.encoder = nn.LSTM(emb, hidden, num_layers=layers)  # time-major (T, B, *)
        if attention == "none":
            self.decoder = nn.LSTM(emb, hidden, num_layers=layers)
        else:
            # Input feeding: layer 0 reads [embedding, previous attentional vector].
            self.cells = nn.ModuleList(
                [nn.LSTMCell(emb + hidden if k == 0 else hidden, hidden) for k in range(layers)])
            if attention == "general":
                self.linear_in = nn.Linear(hidden, hidden, bias=False)
            self.linear_out = nn.Linear(2 * hidden, hidden, bias=False)
        self.proj = nn.Linear(hidden, tgt_vocab)
        # Sutskever et al.: uniform(-0.08, 0.08) init
        for p in self.parameters():
            nn.init.uniform_(p, -0.08, 0.08)

    def encode(self, src):
        # src: (S, B) ; reverse the source sentence (Sutskever trick)
        x = self.src_emb(src.flip(0))
        out, (h, c) = self.encoder(x)
        if self.attention == "none":
            return h, c  # each (L, B, H)
        # + the attention's memory (B, S, H) and the first attentional vector (zeros).
        return h, c, out.transpose(0, 1), torch.zeros_like(h[0])

    def attend_step(self, y, state):
        # y: (N, E) embedded previous tokens; state: (h, c, memory, feed)
        h, c, memory, feed = state
        x = torch.cat([y, feed], 1)
        hs, cs = [], []
        for k, cell in enumerate(self.cells):
            hk, ck = cell(x, (h[k], c[k]))
            hs.append(hk)
            cs.append(ck)
            x = hk
        q = self.linear_in(x) if self.attention == "general" else x
        weights = torch.softmax(torch.bmm(memory, q.unsqueeze(2)).squeeze(2), dim=1)  # (N, S)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        vector = torch.tanh(self.linear_out(torch.cat([context, x], 1)))
        return vector, (torch.stack(hs), torch.stack(cs), memory, vector)

    def forward(self, src, tgt_in):
        state = self.encode(src)
        if self.attention == "none":
            y, _ = self.decoder(self.tgt_emb(tgt_in), state)  # (T, B, H)
            return self.proj(y)  # (T, B, V)
        ys = self.tgt_emb(tgt_in)
        outs = []
        for t in range(ys.shape[0]):
            vector, state = self.attend_step(ys[t], state)
            outs.append(vector)
        return self.proj(torch.stack(outs))  # (T, B, V)

    def decode_step(self, tok, state):
        # tok: (N,) ; state: ((L, N, H), (L, N, H)[, (N, S, H), (N, H)])
        if self.attention != "none":
            vector, state = self.attend_step(self.tgt_emb(tok), state)
            return self.proj(vector), state
        y, state = self.decoder(self.tgt_emb(tok).unsqueeze(0), state)
        return self.proj(y.squeeze(0)), state  # (N, V)


def _cpu_sample():
    """(system busy jiffies, this process's utime+stime jiffies) for contention accounting."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v) - v[3] - v[4]  # minus idle, iowait
    with open("/proc/self/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    own = int(st[11]) + int(st[12])  # utime, stime (fields 14, 15)
    return busy, own


def other_load(t0_sample, t1_sample, wall_s):
    """Average number of cores kept busy by *other* processes during the run."""
    hz = os.sysconf("SC_CLK_TCK")
    (b0, o0), (b1, o1) = t0_sample, t1_sample
    return max(0.0, ((b1 - b0) - (o1 - o0)) / hz / wall_s)


def count_flops_per_tgt_token(a):
    """Approximate forward FLOPs per target token = 2 * (weights touched per target token).

    Encoder weights are touched once per *source* token, so they are scaled by src_len/tgt_len.
    Biases, gate nonlinearities, softmax and embedding lookups are ignored (small).
    """
    def lstm_w(inp, hid, layers):
        return 4 * hid * (inp + hid) + (layers - 1) * 4 * hid * (hid + hid)

    enc = lstm_w(a.emb, a.hidden, a.layers)
    dec = lstm_w(a.emb, a.hidden, a.layers)
    proj = a.hidden * a.tgt_vocab
    touched = enc * (a.src_len / a.tgt_len) + dec + proj
    fwd = 2.0 * touched
    return {
        "enc_lstm_weights": enc,
        "dec_lstm_weights": dec,
        "proj_weights": proj,
        "fwd_flop_per_tgt_tok": fwd,
        "train_flop_per_tgt_tok": 3.0 * fwd,
    }


def rand_tokens(gen, vocab, length, batch):
    return torch.randint(FIRST_REAL, vocab, (length, batch), generator=gen)


def sync(a):
    """Waits for the GPU's queued kernels, so a time read after it includes them."""
    if a.device != "cpu":
        torch.cuda.synchronize()


def bench_train(a, model, gen):
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    src = rand_tokens(gen, a.src_vocab, a.src_len, a.batch)
    tgt = rand_tokens(gen, a.tgt_vocab, a.tgt_len, a.batch)
    tgt_in = torch.cat([torch.full((1, a.batch), BOS, dtype=torch.long), tgt[:-1]], 0)
    n_tok = int((tgt != PAD).sum())
    times, losses = [], []
    model.train()
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, a.tgt_vocab), tgt.reshape(-1), ignore_index=PAD)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        lv = loss.item()  # sync point (CPU is synchronous anyway)
        sync(a)
        dt = time.perf_counter() - t0
        losses.append(lv)
        if step >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    return {
        "ms_per_step_median": med * 1e3,
        "ms_per_step_min": min(times) * 1e3,
        "ms_per_step_max": max(times) * 1e3,
        "tgt_tok_per_s_median": n_tok / med,
        "tgt_tokens_per_step": n_tok,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "step_times_s": times,
    }


@torch.inference_mode()
def greedy_decode(model, src, max_len):
    B = src.shape[1]
    state = model.encode(src)
    tok = torch.full((B,), BOS, dtype=torch.long)
    out = torch.empty((max_len, B), dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    steps = 0
    for t in range(max_len):
        logits, state = model.decode_step(tok, state)
        tok = logits.argmax(-1)
        tok = tok.masked_fill(finished, PAD)
        out[t] = tok
        finished |= tok == EOS
        steps += 1
        if bool(finished.all()):
            break
    return out[:steps], steps


@torch.inference_mode()
def beam_decode(model, src, beam, max_len, len_norm=True):
    """Batched beam search; the beam is flattened into the batch dimension (B*K rows)."""
    B = src.shape[1]
    K = beam
    state = model.encode(src)  # (L, B, H) each[, memory (B, S, H), feed (B, H)]
    # (L, B, H) -> (L, B*K, H), row b*K + k
    h = state[0].repeat_interleave(K, dim=1)
    c = state[1].repeat_interleave(K, dim=1)
    # Attention: each row's memory and attentional vector follow its beam.
    extra = [x.repeat_interleave(K, dim=0) for x in state[2:]]
    V = model.proj.out_features
    tok = torch.full((B * K,), BOS, dtype=torch.long)
    scores = torch.full((B, K), float("-inf"))
    scores[:, 0] = 0.0  # only the first beam is live at t=0
    finished = torch.zeros(B, K, dtype=torch.bool)
    lengths = torch.zeros(B, K)
    hist = torch.empty((B, K, 0), dtype=torch.long)
    base = (torch.arange(B) * K).unsqueeze(1)  # (B, 1)
    steps = 0
    for t in range(max_len):
        logits, (h, c, *extra) = model.decode_step(tok, (h, c, *extra))
        logp = F.log_softmax(logits, dim=-1).view(B, K, V)
        # finished hypotheses may only extend with PAD at zero cost
        if bool(finished.any()):
            fin_row = torch.full((V,), float("-inf"))
            fin_row[PAD] = 0.0
            logp = torch.where(finished.unsqueeze(-1), fin_row, logp)
        cand = (scores.unsqueeze(-1) + logp).view(B, K * V)
        scores, idx = cand.topk(K, dim=-1)  # (B, K)
        src_beam = torch.div(idx, V, rounding_mode="floor")
        new_tok = idx % V
        rows = (base + src_beam).view(-1)  # (B*K,) rows into the flattened beam
        h = h.index_select(1, rows)
        c = c.index_select(1, rows)
        extra = [x.index_select(0, rows) for x in extra]
        hist = torch.cat([hist.gather(1, src_beam.unsqueeze(-1).expand(-1, -1, hist.shape[2])),
                          new_tok.unsqueeze(-1)], dim=2)
        prev_fin = finished.gather(1, src_beam)
        lengths = lengths.gather(1, src_beam) + (~prev_fin).float()
        finished = prev_fin | (new_tok == EOS)
        tok = new_tok.view(-1)
        steps += 1
        if bool(finished.all()):
            break
    final = scores / lengths.clamp(min=1) if len_norm else scores
    best = final.argmax(-1)
    out = hist[torch.arange(B), best]  # (B, steps)
    return out, steps


def bench_decode(a, model, gen, kind):
    model.eval()
    srcs = [rand_tokens(gen, a.src_vocab, a.src_len, a.batch) for _ in range(a.warmup + a.steps)]
    times, nsteps = [], []
    for i, src in enumerate(srcs):
        t0 = time.perf_counter()
        if kind == "greedy":
            out, steps = greedy_decode(model, src, a.max_len)
        else:
            out, steps = beam_decode(model, src, a.beam, a.max_len)
        sync(a)
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
            nsteps.append(steps)
    med = statistics.median(times)
    return {
        "ms_per_batch_median": med * 1e3,
        "ms_per_batch_min": min(times) * 1e3,
        "ms_per_batch_max": max(times) * 1e3,
        "sent_per_s_median": a.batch / med,
        "decode_steps_median": statistics.median(nsteps),
        "batch_times_s": times,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["train", "decode-greedy", "decode-beam"])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--emb", type=int, default=256)
    p.add_argument("--src-vocab", type=int, default=8000)
    p.add_argument("--tgt-vocab", type=int, default=8000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--src-len", type=int, default=20)
    p.add_argument("--tgt-len", type=int, default=20)
    p.add_argument("--steps", type=int, default=20, help="timed steps (train) or timed batches (decode)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.7)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--max-len", type=int, default=30)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--attention", choices=["none", "dot", "general"], default="none",
                   help="Luong global attention with input feeding in the decoder")
    p.add_argument("--no-mkldnn", action="store_true",
                   help="torch.backends.mkldnn.enabled=False: nn.LSTM uses ATen's per-step GEMM path "
                        "instead of the fused oneDNN RNN primitive")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N): where the model and data live")
    p.add_argument("--label", default="")
    p.add_argument("--json", default=None, help="append one JSON line with the result to this file")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    torch.manual_seed(a.seed)
    if a.device != "cpu":
        torch.set_default_device(a.device)
    gen = torch.Generator(device=a.device).manual_seed(a.seed + 1)

    model = Seq2Seq(a.src_vocab, a.tgt_vocab, a.emb, a.hidden, a.layers, a.attention)
    n_params = sum(p.numel() for p in model.parameters())
    fl = count_flops_per_tgt_token(a)

    s0, w0 = _cpu_sample(), time.perf_counter()
    if a.mode == "train":
        r = bench_train(a, model, gen)
        gflops = r["tgt_tok_per_s_median"] * fl["train_flop_per_tgt_tok"] / 1e9
        r["achieved_gflop_s"] = gflops
        summary = (f"train attention={a.attention} L={a.layers} E={a.emb} H={a.hidden} V={a.src_vocab}/{a.tgt_vocab} B={a.batch} "
                   f"S={a.src_len} T={a.tgt_len} thr={a.threads} mkldnn={torch.backends.mkldnn.enabled}: "
                   f"{r['ms_per_step_median']:.1f} ms/step (min {r['ms_per_step_min']:.1f}, max {r['ms_per_step_max']:.1f}), "
                   f"{r['tgt_tok_per_s_median']:.0f} tgt tok/s, {gflops:.1f} GFLOP/s "
                   f"({fl['train_flop_per_tgt_tok']/1e6:.2f} MFLOP/tok), loss {r['loss_first']:.3f}->{r['loss_last']:.3f}")
    else:
        kind = "greedy" if a.mode == "decode-greedy" else "beam"
        r = bench_decode(a, model, gen, kind)
        summary = (f"{a.mode} attention={a.attention} L={a.layers} E={a.emb} H={a.hidden} V={a.src_vocab}/{a.tgt_vocab} B={a.batch} "
                   f"S={a.src_len} beam={a.beam if kind == 'beam' else 1} max_len={a.max_len} thr={a.threads} "
                   f"mkldnn={torch.backends.mkldnn.enabled}: {r['sent_per_s_median']:.2f} sent/s, "
                   f"{r['ms_per_batch_median']:.1f} ms/batch (min {r['ms_per_batch_min']:.1f}, "
                   f"max {r['ms_per_batch_max']:.1f}), steps={r['decode_steps_median']}")
    r["other_procs_load_cores"] = other_load(s0, _cpu_sample(), time.perf_counter() - w0)
    summary += f" [other load {r['other_procs_load_cores']:.2f} cores]"
    print(summary, flush=True)
    if a.json:
        rec = {"label": a.label, "args": vars(a), "n_params": n_params, "flops": fl, "result": r,
               "torch": torch.__version__, "num_threads": torch.get_num_threads(),
               "mkldnn_enabled": torch.backends.mkldnn.enabled,
               "python": platform.python_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(a.json, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
