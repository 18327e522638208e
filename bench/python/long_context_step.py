"""Baseline for bench_long_context: one SFT or DPO step of a large-vocabulary Llama in eager
PyTorch, full logits as users' code computes them, in a process of its own so its peak resident
memory is the step's. DPO runs a live reference forward (no grad) on the same batch.
usage: /usr/bin/python3 long_context_step.py MODEL_DIR METHOD STEPS THREADS LR
Prints `python step_s=S peak_kb=P base_kb=B loss=L` (P: VmHWM at the end; B: VmRSS before the
first step)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import json  # noqa: E402

import torch  # noqa: E402

from llama import Llama, load_safetensors  # noqa: E402
from step_bench import adamw, response_logprobs  # noqa: E402


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    model_dir, method, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(int(sys.argv[4]))
    lr = float(sys.argv[5])
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    reference = Llama(config, {k: v.clone() for k, v in weights.items()})
    for t in weights.values():
        t.requires_grad_(True)
    model = Llama(config, weights)
    batch = load_safetensors(os.path.join(model_dir, "bench_batch.safetensors"))
    opt = adamw(weights, lr)
    mask = batch["loss_mask"][:, 1:].float()

    def step():
        opt.zero_grad()
        logp = response_logprobs(model, batch)
        if method == "sft":
            loss = -logp.sum() / mask.sum()
        else:
            pairs = logp.shape[0] // 2
            with torch.no_grad():
                ref = response_logprobs(reference, batch).sum(-1)
            seq = logp.sum(-1)
            h = (seq[:pairs] - seq[pairs:]) - (ref[:pairs] - ref[pairs:])
            loss = -torch.nn.functional.logsigmoid(0.1 * h).mean()
        loss.backward()
        opt.step()
        return loss.item()

    base = status_kb("VmRSS")
    loss = step()  # warm-up, also counted in the peak
    start = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - start) / steps
    print(f"python step_s={step_s:.6f} peak_kb={status_kb('VmHWM')} base_kb={base} loss={loss:.9g}",
          flush=True)


if __name__ == "__main__":
    main()
