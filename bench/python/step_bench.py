"""Shared by the step baselines (sft_step.py, dpo_step.py): the arguments, the trainable model and
batch, torch.optim.AdamW as Rudder's benchmarks configure theirs, and the run every step benchmark
makes: CHECK_STEPS steps whose losses are printed and whose resulting weights are written for the
caller's agreement check, then the timed steps.
Arguments: MODEL_DIR LR CHECK_STEPS MIN_STEPS MIN_SECONDS THREADS OUT [DEVICE [DTYPE]]
DEVICE: cpu (default) or cuda[:N]; DTYPE: float32 (default) or bf16, the forward under
torch.autocast (log-probs and loss in float32) with float32 weights and optimizer state. On CUDA,
loss.item() ends each step.
Prints `python losses=L1,L2,... step_s=S`. With RUDDER_BENCH_PROFILE=PATH on CUDA, then writes
torch.profiler's table of three more steps to PATH."""
import contextlib
import json
import os
import sys
import time

import torch

from llama import Llama, load_safetensors, save_safetensors


def device():
    return torch.device(sys.argv[8] if len(sys.argv) > 8 else "cpu")


def autocast():
    """The context the forward and the loss run in: bf16 autocast when DTYPE is bf16."""
    if len(sys.argv) > 9 and sys.argv[9] == "bf16":
        return torch.autocast(device().type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load():
    """(model, weights, batch, lr) from the command line, on DEVICE; the weights require
    gradients."""
    model_dir = sys.argv[1]
    torch.set_num_threads(int(sys.argv[6]))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    dev = device()
    weights = {k: v.to(dev).requires_grad_(True)
               for k, v in load_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    batch = {k: v.to(dev)
             for k, v in load_safetensors(os.path.join(model_dir, "bench_batch.safetensors")).items()}
    return Llama(config, weights), weights, batch, float(sys.argv[2])


def adamw(weights, lr):
    """The update of Rudder's trainer::AdamW with bench::adamw_defaults(): no weight decay."""
    return torch.optim.AdamW(list(weights.values()), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.0)


def response_logprobs(model, batch):
    """log p(ids[t] | ids[< t]) for t >= 1 in float32, times the loss mask: [batch, seq - 1]."""
    ids = batch["input_ids"]
    with autocast():
        logits = model(ids, batch["attention_mask"], batch["position_ids"]).float()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return logp * batch["loss_mask"][:, 1:].float()


def check_then_time(step, weights):
    """Runs `step` (returns the loss) CHECK_STEPS times, writes the weights to OUT, then times it
    for at least MIN_STEPS steps and MIN_SECONDS; prints the figures."""
    check_steps, min_steps, min_seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    losses = [step() for _ in range(check_steps)]
    save_safetensors(sys.argv[7], {k: v.detach() for k, v in weights.items()})
    n, start = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - start < min_seconds:
        step()
        n += 1
    step_s = (time.perf_counter() - start) / n
    print(f"python losses={','.join(f'{x:.9g}' for x in losses)} step_s={step_s:.6f}", flush=True)
    profile_to = os.environ.get("RUDDER_BENCH_PROFILE")
    if profile_to and device().type == "cuda":
        write_profile(step, profile_to)


def write_profile(step, path):
    """Writes where three more steps spend their time, operator by operator (torch.profiler's
    table by self time on the device), to `path`. A bonus: failing here never fails the run."""
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                step()
        averages = prof.key_averages()
        table = None
        for key in ("self_device_time_total", "self_cuda_time_total"):  # the name before 2.4
            try:
                table = averages.table(sort_by=key, row_limit=30)
                break
            except Exception:  # noqa: BLE001 - an unknown key in this version
                continue
        with open(path + ".tmp", "w") as f:
            f.write(table if table is not None else "no table: neither sort key is known\n")
        os.replace(path + ".tmp", path)
    except Exception as e:  # noqa: BLE001
        print(f"profile not written: {e}", file=sys.stderr, flush=True)
