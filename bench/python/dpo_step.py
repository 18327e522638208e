"""Baseline for bench_dpo_step: one DPO step (chosen and rejected in one forward, summed response
log-probs, sigmoid loss against precomputed reference log-probs, backward, AdamW) in eager PyTorch.
usage: /usr/bin/python3 dpo_step.py MODEL_DIR STEPS THREADS
Prints `python loss0=X step_s=Y`."""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from llama import Llama, load_safetensors  # noqa: E402


def main():
    model_dir, steps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(int(sys.argv[3]))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    for t in weights.values():
        t.requires_grad_(True)
    model = Llama(config, weights)
    d = load_safetensors(os.path.join(model_dir, "bench_batch.safetensors"))
    ids, mask, pos, labels = d["input_ids"], d["attention_mask"], d["position_ids"], d["loss_mask"]
    ref_c, ref_r = d["ref_chosen"], d["ref_rejected"]
    pairs = ids.shape[0] // 2
    opt = torch.optim.AdamW(list(weights.values()), lr=1e-5, weight_decay=0.0)

    def step():
        opt.zero_grad()
        logits = model(ids, mask, pos).float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        seq = (logp * labels[:, 1:].float()).sum(-1)
        h = (seq[:pairs] - seq[pairs:]) - (ref_c - ref_r)
        loss = -torch.nn.functional.logsigmoid(0.1 * h).mean()
        loss.backward()
        opt.step()
        return loss.item()

    loss0 = step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"python loss0={loss0:.6f} step_s={(time.perf_counter() - start) / steps:.4f}", flush=True)


if __name__ == "__main__":
    main()
