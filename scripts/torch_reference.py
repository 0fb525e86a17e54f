#!/usr/bin/env python3
"""PyTorch reference of ctrflow's A-CTR network, for the training-throughput benchmark.

The same architecture and sizes as `ctrflow_models::nn::CtrNet` with its default config, trained
the way PyTorch users train such a model at its strongest: embedding tables with
`sparse=True` and `torch.optim.SparseAdam`, the dense part with `torch.optim.Adam`.
`--dense` trains the tables densely instead (`sparse=False`, one Adam over everything).

Per step, like ctrflow's trainer:
  user, item (candidate, short and long sequence: one shared table) and category embeddings;
  ETA: SimHash codes (a fixed Gaussian projection d x bits, sign bits) of the current item
  embeddings, no gradient; per row the top-k long behaviours by Hamming distance to the
  candidate; multi-head target attention over them;
  DIN attention (local activation unit on [q, k, q-k, q*k], raw-score weights) over the short
  sequence; K TPM snapshot vectors per user and item (frozen tables) -> single-head
  self-attention with residual -> mean pool; concat with the dense context -> MLP with batch norm
  -> logit; binary cross-entropy; backward; optimiser steps.

Data: deterministic synthetic batches (ids uniform over each table's rows, every history full
length), generated once and cycled, so the timed loop is training only. The Rust side of the
benchmark (`models/benches/train_throughput.rs`) feeds its trainer batches of the same shape.

Prints one JSON object: {"samples_per_s": ..., "seconds_per_step": ..., "split": {...}}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Din(nn.Module):
    """DIN local activation unit; weights are raw scores at real positions, 0 at padding."""

    def __init__(self, d, hidden=(80, 40)):
        super().__init__()
        layers, d_in = [], 4 * d
        for h in hidden:
            layers += [nn.Linear(d_in, h), nn.ReLU()]
            d_in = h
        layers.append(nn.Linear(d_in, 1))
        self.unit = nn.Sequential(*layers)

    def forward(self, target, seq, mask):  # [B,d], [B,S,d], [B,S] float 0/1
        keys = seq * mask.unsqueeze(-1)
        q = target.unsqueeze(1).expand_as(keys)
        scores = self.unit(torch.cat([q, keys, q - keys, q * keys], -1)).squeeze(-1)
        weights = scores * mask
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # [B,d]


class TargetAttention(nn.Module):
    """Multi-head scaled dot-product attention, the candidate as the query."""

    def __init__(self, d, heads=2):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, target, seq, mask):  # [B,d], [B,k,d], [B,k] bool
        b, n, d = seq.shape
        h, dh = self.heads, d // self.heads
        seq = seq * mask.unsqueeze(-1)
        q = self.q(target).view(b, h, 1, dh)
        k = self.k(seq).view(b, n, h, dh).transpose(1, 2)
        v = self.v(seq).view(b, n, h, dh).transpose(1, 2)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(dh)  # [B,h,1,k]
        scores = scores.masked_fill(~mask.view(b, 1, 1, n), float("-inf"))
        weights = torch.softmax(scores, -1).nan_to_num(0.0)
        out = self.o((weights @ v).reshape(b, d))
        return out * mask.any(-1, keepdim=True)


class Historical(nn.Module):
    """K snapshot vectors -> single-head self-attention with residual -> mean over K."""

    def __init__(self, d_h):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(d_h, d_h) for _ in range(3))
        self.scale = math.sqrt(d_h)

    def forward(self, x):  # [B,K,d_h]
        scores = self.q(x) @ self.k(x).transpose(1, 2) / self.scale
        return (x + torch.softmax(scores, -1) @ self.v(x)).mean(1)


class CtrNet(nn.Module):
    def __init__(self, a, sparse):
        super().__init__()
        d = a.d
        self.user = nn.Embedding(a.users, d, sparse=sparse)
        self.item = nn.Embedding(a.items, d, sparse=sparse)
        self.category = nn.Embedding(a.categories, d, sparse=sparse)
        self.din = Din(d)
        self.long = TargetAttention(d, a.heads)
        self.hist_user = Historical(a.d_hist)
        self.hist_item = Historical(a.d_hist)
        layers, d_in = [], 5 * d + a.context + 2 * a.d_hist
        for h in (200, 80):
            layers += [nn.Linear(d_in, h), nn.BatchNorm1d(h), nn.ReLU()]
            d_in = h
        layers.append(nn.Linear(d_in, 1))
        self.mlp = nn.Sequential(*layers)
        gen = torch.Generator().manual_seed(a.seed ^ 0x45544100)
        self.register_buffer("projection", torch.randn(d, a.bits, generator=gen))
        self.top_k = a.top_k

    def forward(self, batch, snapshots):
        item = self.item(batch["item"])  # [B,d]
        # ETA: sign bits of the current embeddings (no gradient), Hamming top-k.
        with torch.no_grad():
            long_all = self.item(batch["long"])  # [B,L,d]
            seq_bits = (long_all @ self.projection) > 0  # [B,L,bits]
            cand_bits = (item @ self.projection) > 0  # [B,bits]
            distance = (seq_bits != cand_bits.unsqueeze(1)).sum(-1)  # [B,L]
            picked = torch.topk(distance, self.top_k, dim=1, largest=False).indices
        long_ids = torch.gather(batch["long"], 1, picked)
        long = self.item(long_ids)  # [B,k,d], with gradient
        long_mask = torch.ones_like(long_ids, dtype=torch.bool)
        short = self.item(batch["short"])  # [B,S,d]
        parts = [
            self.user(batch["user"]),
            item,
            self.category(batch["category"]),
            batch["context"],
            self.din(item, short, batch["short_mask"]),
            self.long(item, long, long_mask),
            self.hist_user(snapshots["user"][batch["user"]]),
            self.hist_item(snapshots["item"][batch["item"]]),
        ]
        return self.mlp(torch.cat(parts, 1))


def make_batches(a):
    gen = torch.Generator().manual_seed(a.seed)
    out = []
    for _ in range(a.batches):
        ri = lambda hi, shape: torch.randint(0, hi, shape, generator=gen)
        long = ri(a.items, (a.batch, a.long_len))
        out.append(
            {
                "user": ri(a.users, (a.batch,)),
                "item": ri(a.items, (a.batch,)),
                "category": ri(a.categories, (a.batch,)),
                "context": torch.rand(a.batch, a.context, generator=gen),
                "short": long[:, : a.short_len].clone(),
                "short_mask": torch.ones(a.batch, a.short_len),
                "long": long,
                "label": ri(2, (a.batch, 1)).float(),
            }
        )
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batches", type=int, default=4, help="distinct batches cycled")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--categories", type=int, default=1_000)
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--d-hist", type=int, default=16)
    p.add_argument("--snapshots", type=int, default=3, help="K TPM snapshots")
    p.add_argument("--context", type=int, default=6)
    p.add_argument("--short-len", type=int, default=50)
    p.add_argument("--long-len", type=int, default=1000)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dense", action="store_true", help="dense embedding gradients + Adam")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    net = CtrNet(a, sparse=not a.dense)
    net.train()
    tables = [net.user.weight, net.item.weight, net.category.weight]
    table_ids = {id(t) for t in tables}
    dense_params = [q for q in net.parameters() if id(q) not in table_ids]
    if a.dense:
        optimizers = [torch.optim.Adam(list(net.parameters()), lr=a.lr)]
    else:
        optimizers = [torch.optim.Adam(dense_params, lr=a.lr), torch.optim.SparseAdam(tables, lr=a.lr)]
    snapshots = {
        "user": torch.randn(a.users, a.snapshots, a.d_hist),
        "item": torch.randn(a.items, a.snapshots, a.d_hist),
    }
    batches = make_batches(a)

    split = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(i, timed):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(net(b, snapshots), b["label"])
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        for o in optimizers:
            o.step()
        t3 = time.perf_counter()
        if timed:
            split["forward"] += t1 - t0
            split["backward"] += t2 - t1
            split["optimizer"] += t3 - t2
        return loss.item()

    for i in range(a.warmup):
        step(i, False)
    start = time.perf_counter()
    losses = [step(a.warmup + i, True) for i in range(a.steps)]
    seconds = time.perf_counter() - start
    if not all(math.isfinite(x) for x in losses):
        raise SystemExit(f"non-finite loss: {losses}")
    print(
        json.dumps(
            {
                "implementation": "pytorch-dense" if a.dense else "pytorch-sparse",
                "torch": torch.__version__,
                "threads": a.threads,
                "batch": a.batch,
                "steps": a.steps,
                "samples_per_s": a.steps * a.batch / seconds,
                "seconds_per_step": seconds / a.steps,
                "split": {k: v / a.steps for k, v in split.items()},
                "first_loss": losses[0],
                "last_loss": losses[-1],
            }
        )
    )


if __name__ == "__main__":
    main()
