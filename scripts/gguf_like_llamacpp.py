#!/usr/bin/env python3
"""An f32 GGUF of a LLaDA or Dream folder written the way llama.cpp's convert_hf_to_gguf.py
writes it, with llama.cpp's own gguf-py package: its TensorNameMap for the names, its
GGUFWriter, and the LLaDA converter's q/k `permute` (undo_permute) copied from it. An
independent writer to check `d2c run --model FILE.gguf` against (d2c's own `quantize` shares
code with its reader). Needs `pip install gguf safetensors numpy`; not part of the test suite
(nothing is installed at test time).

usage: scripts/gguf_like_llamacpp.py MODEL_DIR OUT.gguf
"""
import json, sys
import numpy as np
import gguf
from safetensors.numpy import load_file

src, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{src}/config.json"))
dream = cfg.get("model_type", "").lower() == "dream"
arch = gguf.MODEL_ARCH.DREAM if dream else gguf.MODEL_ARCH.LLADA
name = gguf.MODEL_ARCH_NAMES[arch]
n_layers = cfg["num_hidden_layers"] if dream else cfg["n_layers"]
n_head = cfg["num_attention_heads"] if dream else cfg["n_heads"]
n_kv = cfg["num_key_value_heads"] if dream else (cfg.get("n_kv_heads") or n_head)
d = cfg["hidden_size"] if dream else cfg["d_model"]
tmap = gguf.get_tensor_name_map(arch, n_layers)


def permute(w, n_head, n_head_kv):  # llama.cpp LLaDAModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


w = gguf.GGUFWriter(out, name)
w.add_block_count(n_layers)
w.add_context_length(cfg["max_position_embeddings"] if dream else cfg["max_sequence_length"])
w.add_embedding_length(d)
w.add_feed_forward_length(cfg["intermediate_size"] if dream else cfg["mlp_hidden_size"])
w.add_head_count(n_head)
w.add_head_count_kv(n_kv)
w.add_rope_freq_base(cfg["rope_theta"])
w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
w.add_causal_attention(False)
w.add_eos_token_id(cfg["eos_token_id"])
w.add_mask_token_id(cfg["mask_token_id"])
if not dream:
    w.add_diffusion_shift_logits(False)
for k, t in load_file(f"{src}/model.safetensors").items():
    t = t.astype(np.float32)
    if not dream and k.endswith(("q_proj.weight",)):
        t = permute(t, n_head, n_head)
    if not dream and k.endswith(("k_proj.weight",)):
        t = permute(t, n_head, n_kv)
    base, suffix = k.rsplit(".", 1)
    new = tmap.get_name(base)
    if new is None:
        sys.exit(f"no GGUF name for {k}")
    w.add_tensor(f"{new}.{suffix}", t)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out}")
