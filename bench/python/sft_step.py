"""Baseline for bench_sft_step: one SFT step (forward, masked token NLL, backward, AdamW) in eager
PyTorch on the same weights and batch.
usage: /usr/bin/python3 sft_step.py MODEL_DIR LR CHECK_STEPS MIN_STEPS MIN_SECONDS THREADS OUT
(see step_bench.py for the arguments and the output)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from step_bench import adamw, check_then_time, load, response_logprobs  # noqa: E402


def main():
    model, weights, batch, lr = load()
    opt = adamw(weights, lr)
    tokens = batch["loss_mask"][:, 1:].sum()

    def step():
        opt.zero_grad()
        loss = -response_logprobs(model, batch).sum() / tokens
        loss.backward()
        opt.step()
        return loss.item()

    check_then_time(step, weights)


if __name__ == "__main__":
    main()
