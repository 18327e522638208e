"""Baseline for bench_forward: eager PyTorch forward of the same weights.
usage: /usr/bin/python3 forward.py MODEL_DIR SEQ BATCH[,BATCH...] SECONDS THREADS
Prints one line per batch size: `python batch=B tokens_per_s=X`, and writes the logits of the
fixed check input to MODEL_DIR/python_logits.safetensors so the caller can verify the work."""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from llama import Llama, load_safetensors, save_safetensors  # noqa: E402


def main():
    model_dir, seq, batches, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    torch.set_num_threads(int(sys.argv[5]))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    model = Llama(config, load_safetensors(os.path.join(model_dir, "model.safetensors")))
    check = load_safetensors(os.path.join(model_dir, "check_input.safetensors"))
    with torch.no_grad():
        logits = model(check["input_ids"], check["attention_mask"], check["position_ids"])
        save_safetensors(os.path.join(model_dir, "python_logits.safetensors"), {"logits": logits})
        for b in [int(x) for x in batches.split(",")]:
            ids = torch.randint(0, config["vocab_size"], (b, seq))
            mask = torch.ones(b, seq, dtype=torch.int64)
            pos = torch.arange(seq).repeat(b, 1)
            for _ in range(2):
                model(ids, mask, pos)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                model(ids, mask, pos)
                n += 1
            elapsed = time.perf_counter() - start
            print(f"python batch={b} tokens_per_s={n * b * seq / elapsed:.1f}", flush=True)


if __name__ == "__main__":
    main()
