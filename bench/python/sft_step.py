"""Baseline for bench_sft_step: one SFT step (forward, masked token NLL, backward, AdamW) in eager
PyTorch on the same weights.
usage: /usr/bin/python3 sft_step.py MODEL_DIR BATCH SEQ SECONDS THREADS
Prints `python loss0=X step_s=Y tokens_per_s=Z` (loss0: the first step's loss, for the check)."""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from llama import Llama, load_safetensors  # noqa: E402


def main():
    model_dir, batch, seq, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    torch.set_num_threads(int(sys.argv[5]))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    for t in weights.values():
        t.requires_grad_(True)
    model = Llama(config, weights)
    data = load_safetensors(os.path.join(model_dir, "bench_batch.safetensors"))
    ids, mask, pos, labels = data["input_ids"], data["attention_mask"], data["position_ids"], data["loss_mask"]
    opt = torch.optim.AdamW(list(weights.values()), lr=1e-4, weight_decay=0.0)

    def step():
        opt.zero_grad()
        logits = model(ids, mask, pos).float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        m = labels[:, 1:].float()
        loss = -(logp * m).sum() / m.sum()
        loss.backward()
        opt.step()
        return loss.item()

    loss0 = step()
    step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    elapsed = (time.perf_counter() - start) / n
    print(f"python loss0={loss0:.6f} step_s={elapsed:.4f} tokens_per_s={batch * seq / elapsed:.1f}", flush=True)


if __name__ == "__main__":
    main()
