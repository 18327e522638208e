"""Baseline for bench_decode: greedy generation with a KV cache, written the usual eager way (the
cache grows with torch.cat, as Hugging Face's DynamicCache does).
usage: /usr/bin/python3 decode.py MODEL_DIR NEW_TOKENS BATCH[,BATCH...] SECONDS THREADS [DEVICE]
DEVICE: cpu (default) or cuda[:N]; on CUDA each timed run ends with a synchronize.
Reads the prompts [rows, length] from MODEL_DIR/prompts.safetensors. Prints, per batch size,
`python batch=B tokens_per_s=X` and `python batch=B tokens=<row>:<ids,...>` for each row of
its first run, so the caller can check both sides generate the same tokens."""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from llama import Llama, load_safetensors  # noqa: E402


def forward_cached(model, ids, past_len, cache):
    """Logits of the last position of ids [B, T], appending this call's keys/values to cache."""
    w, B, T = model.w, ids.shape[0], ids.shape[1]
    x = w["model.embed_tokens.weight"][ids]
    dev = ids.device
    pos = torch.arange(past_len, past_len + T, device=dev).unsqueeze(0).expand(B, T)
    inv = model.theta ** (-torch.arange(0, model.head_dim // 2, dtype=torch.float64, device=dev) * 2.0 / model.head_dim)
    freqs = pos.float().unsqueeze(-1) * inv.float()
    emb = torch.cat((freqs, freqs), -1).unsqueeze(1)
    cos, sin = emb.cos(), emb.sin()
    S = past_len + T
    bias = None
    if T > 1:
        allowed = torch.arange(S, device=dev).unsqueeze(0) <= torch.arange(past_len, S, device=dev).unsqueeze(1)
        bias = torch.zeros(T, S, device=dev).masked_fill(~allowed, torch.finfo(torch.float32).min)
    g = model.heads // model.kv_heads
    for i in range(model.layers):
        p = f"model.layers.{i}."
        h = model.rms(x, w[p + "input_layernorm.weight"])
        q = torch.nn.functional.linear(h, w[p + "self_attn.q_proj.weight"])
        k = torch.nn.functional.linear(h, w[p + "self_attn.k_proj.weight"])
        v = torch.nn.functional.linear(h, w[p + "self_attn.v_proj.weight"])
        q = q.view(B, T, model.heads, model.head_dim).transpose(1, 2)
        k = k.view(B, T, model.kv_heads, model.head_dim).transpose(1, 2)
        v = v.view(B, T, model.kv_heads, model.head_dim).transpose(1, 2)
        q = q * cos + model.rotate_half(q) * sin
        k = k * cos + model.rotate_half(k) * sin
        if cache[i] is not None:
            k = torch.cat((cache[i][0], k), 2)
            v = torch.cat((cache[i][1], v), 2)
        cache[i] = (k, v)
        k = k.repeat_interleave(g, 1)
        v = v.repeat_interleave(g, 1)
        scores = torch.matmul(q, k.transpose(-2, -1)).float() / math.sqrt(model.head_dim)
        if bias is not None:
            scores = scores + bias
        attn = torch.matmul(torch.softmax(scores, -1).to(q.dtype), v).transpose(1, 2).reshape(B, T, -1)
        x = x + torch.nn.functional.linear(attn, w[p + "self_attn.o_proj.weight"])
        h = model.rms(x, w[p + "post_attention_layernorm.weight"])
        gate = torch.nn.functional.linear(h, w[p + "mlp.gate_proj.weight"])
        up = torch.nn.functional.linear(h, w[p + "mlp.up_proj.weight"])
        x = x + torch.nn.functional.linear(torch.nn.functional.silu(gate) * up, w[p + "mlp.down_proj.weight"])
    x = model.rms(x[:, -1], w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if model.tied else w["lm_head.weight"]
    return torch.matmul(x, head.t())


def generate(model, prompts, new_tokens):
    cache = [None] * model.layers
    logits = forward_cached(model, prompts, 0, cache)
    out = []
    for step in range(new_tokens):
        nxt = logits.argmax(-1)
        out.append(nxt)
        if step + 1 < new_tokens:
            logits = forward_cached(model, nxt.unsqueeze(1), prompts.shape[1] + step, cache)
    return torch.stack(out, 1)


def main():
    model_dir, new_tokens, batches, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    torch.set_num_threads(int(sys.argv[5]))
    device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = Llama(config, {k: v.to(device) for k, v in weights.items()})
    prompts = load_safetensors(os.path.join(model_dir, "prompts.safetensors"))["prompts"].to(device)
    with torch.no_grad():
        for b in [int(x) for x in batches.split(",")]:
            rows = prompts[:b]
            tokens = generate(model, rows, new_tokens)
            for r in range(b):
                print(f"python batch={b} tokens={r}:" + ",".join(str(int(t)) for t in tokens[r]), flush=True)
            n, start = 0, time.perf_counter()
            while n < 1 or time.perf_counter() - start < seconds:
                generate(model, rows, new_tokens)
                sync()
                n += 1
            elapsed = time.perf_counter() - start
            print(f"python batch={b} tokens_per_s={n * b * new_tokens / elapsed:.1f}", flush=True)


if __name__ == "__main__":
    main()
