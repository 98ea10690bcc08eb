#!/usr/bin/env python3
"""Time the authors' d2Cache reference (Kamichanw/d2Cache @ 72feb60) on a LLaDA folder, on CPU.

Called by scripts/bench-reference.sh, which sets up the virtualenv, builds the folder and
times d2c on the same folder and prompt ids. This file imports the reference from --ref and
calls its own `vanilla_generate`, without a cache and with its d2Cache, greedy, one token per
step, float32, eager attention (what d2c's parity traces use), after one untimed warm-up
forward. It prints one JSON object: per run the wall time, steps and tokens/s.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import types


def stub_lm_eval() -> None:
    """The reference's model packages import lm_eval for evaluation wrappers this timing never
    touches; empty stand-ins spare installing lm-eval and its data sets."""
    names = ["lm_eval", "lm_eval.api", "lm_eval.api.model", "lm_eval.api.instance"]
    mods = {n: types.ModuleType(n) for n in names}
    mods["lm_eval.api.model"].TemplateLM = type("TemplateLM", (), {})
    mods["lm_eval.api.instance"].Instance = type("Instance", (), {})
    mods["lm_eval"].api = mods["lm_eval.api"]
    mods["lm_eval.api"].model = mods["lm_eval.api.model"]
    mods["lm_eval.api"].instance = mods["lm_eval.api.instance"]
    for n, m in mods.items():
        sys.modules.setdefault(n, m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="checkout of Kamichanw/d2Cache (commit 72feb60)")
    ap.add_argument("--model-dir", required=True, help="LLaDA folder (config.json + safetensors)")
    ap.add_argument("--prompt-ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--gen-length", type=int, default=256)
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", default="nocache,d2cache", help="nocache and/or d2cache")
    a = ap.parse_args()

    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    mask_id, eos_id = int(cfg["mask_token_id"]), int(cfg["eos_token_id"])
    # The reference reads its special ids from the environment.
    os.environ.update(MASK_TOKEN_ID=str(mask_id), EOS_TOKEN_ID=str(eos_id),
                      PAD_TOKEN_ID=str(cfg.get("pad_token_id", eos_id)), CUDA_VISIBLE_DEVICES="")
    sys.path.insert(0, os.path.abspath(a.ref))
    stub_lm_eval()
    import torch

    torch.set_num_threads(a.threads)
    import src  # noqa: F401  (registers the reference's omegaconf resolvers)
    import src.generation.utils as gen_utils
    from src.cache import d2Cache
    from src.generation.vanilla import vanilla_generate
    from src.models import LLaDAModelLM

    # get_token_freq reads LLaDA-8B's corpus token frequencies (PC-Sampler's debiasing, off
    # here) into a vocabulary-sized table, which fails on a smaller vocabulary.
    gen_utils.get_token_freq = lambda *args, **kwargs: None
    prompt = torch.tensor([[int(t) for t in a.prompt_ids.split(",")]])
    g = a.gen_length
    model = LLaDAModelLM.from_pretrained(a.model_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        model(torch.cat([prompt, torch.full((1, g), mask_id)], dim=1))  # warm-up, not timed

    out = dict(torch=torch.__version__, cpu_capability=torch.backends.cpu.get_cpu_capability(),
               threads=a.threads, prompt_len=prompt.shape[1], gen_length=g, block_length=a.block_length, runs={})
    for run in [r for r in a.runs.split(",") if r]:
        if run == "d2cache":
            # d2c's policies/d2cache.pol defaults: rollout_p 0.1, current_k 32, cache sigma 10,
            # inflate_w 0, and the sampler's certainty prior sigma 10.
            cache_cls, sigma = functools.partial(d2Cache, rollout_p=0.1, current_k=32, sigma=10.0, inflate_w=0), 10.0
        elif run == "nocache":
            cache_cls, sigma = None, None
        else:
            sys.exit(f"bench_reference.py: --runs: unknown run `{run}` (nocache, d2cache)")
        t0 = time.perf_counter()
        rec = vanilla_generate(model, prompt, gen_length=g, block_length=a.block_length, num_transfer_tokens=1,
                               temperature=0.0, alg="maskgit_plus", sigma=sigma, mask_token_id=mask_id,
                               eos_token_id=eos_id, stop_until_eos=False, cache_cls=cache_cls)
        wall = time.perf_counter() - t0
        tokens = rec[-1].as_batch().generated_tokens[0].tolist()
        out["runs"][run] = dict(wall_s=wall, steps=rec.num_steps, tokens_per_s=g / wall, tokens=tokens)
        print(f"reference {run}: {wall:.2f} s, {rec.num_steps} steps, {g / wall:.3f} tokens/s", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
