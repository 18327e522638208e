"""The plain PyTorch-Python baseline of Rudder's benchmarks: a Llama forward written the usual
eager way, reading and writing safetensors with the standard library (no extra packages)."""
import json
import math
import struct

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        buf = bytearray(data[base + start:base + end])
        t = torch.frombuffer(buf, dtype=DTYPES[entry["dtype"]]) if buf else torch.empty(0, dtype=DTYPES[entry["dtype"]])
        out[name] = t.reshape(entry["shape"]).clone()
    return out


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.numpy().tobytes()
        dtype = {v: k for k, v in DTYPES.items()}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


class Llama(torch.nn.Module):
    """Llama/Qwen2 forward as Hugging Face computes it (RMSNorm, RoPE half-split, GQA, SwiGLU)."""

    def __init__(self, config, weights):
        super().__init__()
        self.c = config
        self.w = weights
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads", self.heads)
        self.head_dim = config.get("head_dim", config["hidden_size"] // self.heads)
        self.eps = config.get("rms_norm_eps", 1e-6)
        self.theta = config.get("rope_theta", 10000.0)
        self.layers = config["num_hidden_layers"]
        self.tied = config.get("tie_word_embeddings", False)

    def rms(self, x, w):
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    @staticmethod
    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def forward(self, ids, mask, pos):
        w, B, T = self.w, ids.shape[0], ids.shape[1]
        dev = ids.device
        x = w["model.embed_tokens.weight"][ids]
        inv = self.theta ** (-torch.arange(0, self.head_dim // 2, dtype=torch.float64, device=dev) * 2.0 / self.head_dim)
        freqs = pos.float().unsqueeze(-1) * inv.float()
        emb = torch.cat((freqs, freqs), -1).unsqueeze(1)
        cos, sin = emb.cos(), emb.sin()
        causal = torch.arange(T, device=dev).unsqueeze(0) <= torch.arange(T, device=dev).unsqueeze(1)
        allowed = causal.unsqueeze(0) & (mask != 0).unsqueeze(1)
        bias = torch.zeros(allowed.shape, device=dev).masked_fill(~allowed, torch.finfo(torch.float32).min).unsqueeze(1)
        for i in range(self.layers):
            p = f"model.layers.{i}."
            h = self.rms(x, w[p + "input_layernorm.weight"])
            q = torch.nn.functional.linear(h, w[p + "self_attn.q_proj.weight"], w.get(p + "self_attn.q_proj.bias"))
            k = torch.nn.functional.linear(h, w[p + "self_attn.k_proj.weight"], w.get(p + "self_attn.k_proj.bias"))
            v = torch.nn.functional.linear(h, w[p + "self_attn.v_proj.weight"], w.get(p + "self_attn.v_proj.bias"))
            q = q.view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            g = self.heads // self.kv_heads
            k = k.repeat_interleave(g, 1)
            v = v.repeat_interleave(g, 1)
            scores = torch.matmul(q, k.transpose(-2, -1)).float() / math.sqrt(self.head_dim) + bias
            attn = torch.matmul(torch.softmax(scores, -1).to(q.dtype), v).transpose(1, 2).reshape(B, T, -1)
            x = x + torch.nn.functional.linear(attn, w[p + "self_attn.o_proj.weight"])
            h = self.rms(x, w[p + "post_attention_layernorm.weight"])
            gate = torch.nn.functional.linear(h, w[p + "mlp.gate_proj.weight"])
            up = torch.nn.functional.linear(h, w[p + "mlp.up_proj.weight"])
            x = x + torch.nn.functional.linear(torch.nn.functional.silu(gate) * up, w[p + "mlp.down_proj.weight"])
        x = self.rms(x, w["model.norm.weight"])
        head = w["model.embed_tokens.weight"] if self.tied else w["lm_head.weight"]
        return torch.matmul(x, head.t())
