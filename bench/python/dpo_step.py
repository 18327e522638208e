"""Baseline for bench_dpo_step: one DPO step (chosen and rejected in one forward, summed response
log-probs, sigmoid loss with beta 0.1 against precomputed reference log-probs, backward, AdamW) in
eager PyTorch on the same weights and batch.
usage: /usr/bin/python3 dpo_step.py MODEL_DIR LR CHECK_STEPS MIN_STEPS MIN_SECONDS THREADS OUT
       [DEVICE [DTYPE]]
(see step_bench.py for the arguments and the output)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from step_bench import adamw, check_then_time, load, response_logprobs  # noqa: E402


def main():
    model, weights, batch, lr = load()
    opt = adamw(weights, lr)
    ref = batch["ref_chosen"] - batch["ref_rejected"]
    pairs = ref.shape[0]

    def step():
        opt.zero_grad()
        seq = response_logprobs(model, batch).sum(-1)
        h = (seq[:pairs] - seq[pairs:]) - ref
        loss = -torch.nn.functional.logsigmoid(0.1 * h).mean()
        loss.backward()
        opt.step()
        return loss.item()

    check_then_time(step, weights)


if __name__ == "__main__":
    main()
