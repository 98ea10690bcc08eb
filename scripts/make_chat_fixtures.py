#!/usr/bin/env python3
"""Writes the instruct-checkpoint fixture folders of tests/chat.rs (no dependencies).

tests/fixtures/llada-instruct/: LLaDA-8B-Instruct's token layout (<|startoftext|> 126080,
<|endoftext|> 126081, <|mdm_mask|> 126336, <|start_header_id|> 126346, <|end_header_id|> 126347,
<|eot_id|> 126348, vocab 126464), a tokenizer.json whose post-processor adds BOS (so a double BOS
would show), and its Llama-3-style chat template, which writes BOS itself.

tests/fixtures/dream-instruct/: Dream-v0-Instruct-7B's layout (<|endoftext|> 151643,
<|im_start|> 151644, <|im_end|> 151645, <|beginoftext|> 151665, <|mask|> 151666, vocab 152064)
as the slow-tokenizer files Qwen2 checkpoints ship: vocab.json + merges.txt +
tokenizer_config.json, with a Qwen2.5-style template.

Both tokenizers are byte-level BPE without merges over a vocabulary in which the byte-level
character of byte b has id b, so the ids of plain text are its UTF-8 bytes. That lets
expected.json state, derived by hand from the template and independent of any Jinja engine,
the ids `transformers`' apply_chat_template(..., add_generation_prompt=True) gives.
The weights are not stored: tests/chat.rs writes them (config.json gives the shapes).
"""
import json, os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_VOCAB = {ch: b for b, ch in bytes_to_unicode().items()}


def text(s):
    return list(s.encode("utf-8"))


def added(id_, content):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}


def write(folder, name, obj):
    path = os.path.join(HERE, folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        if isinstance(obj, str):
            f.write(obj)
        else:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")


# The conversations of the fixtures (tests/chat.rs snapshots all four).
Q1, A1, Q2, SYS = "What is 12 * 7?", "84", "And 12 * 8?", "You answer with a number."
CONVERSATIONS = {
    "one_turn": [{"role": "user", "content": Q1}],
    "one_turn_system": [{"role": "system", "content": SYS}, {"role": "user", "content": Q1}],
    "two_turns": [{"role": "user", "content": Q1}, {"role": "assistant", "content": A1}, {"role": "user", "content": Q2}],
    "two_turns_system": [{"role": "system", "content": SYS}, {"role": "user", "content": Q1}, {"role": "assistant", "content": A1}, {"role": "user", "content": Q2}],
}

# ---------------------------------------------------------------- LLaDA-8B-Instruct layout
BOS, EOS, MASK, SH, EH, EOT = 126080, 126081, 126336, 126346, 126347, 126348
LLADA_SPECIAL = [(BOS, "<|startoftext|>"), (EOS, "<|endoftext|>"), (MASK, "<|mdm_mask|>"), (SH, "<|start_header_id|>"), (EH, "<|end_header_id|>"), (EOT, "<|eot_id|>")]
LLADA_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def llada_ids(messages):
    """The LLaDA template by hand: BOS once, then per turn a header, the trimmed content, EOT."""
    ids = [BOS]
    for m in messages:
        ids += [SH] + text(m["role"]) + [EH] + text("\n\n") + text(m["content"].strip()) + [EOT]
    return ids + [SH] + text("assistant") + [EH] + text("\n\n")


vocab = dict(BYTE_VOCAB)
vocab.update({c: i for i, c in LLADA_SPECIAL})
write("llada-instruct", "tokenizer.json", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(i, c) for i, c in LLADA_SPECIAL],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|startoftext|>": {"id": "<|startoftext|>", "ids": [BOS], "tokens": ["<|startoftext|>"]}},
    },
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
              "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": []},
})
write("llada-instruct", "tokenizer_config.json", {
    "add_bos_token": False, "add_eos_token": False, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>", "model_max_length": 4096, "tokenizer_class": "PreTrainedTokenizerFast",
    "chat_template": LLADA_TEMPLATE,
})
write("llada-instruct", "generation_config.json", {"bos_token_id": BOS, "eos_token_id": [EOS, EOT], "pad_token_id": EOS, "max_new_tokens": 16, "block_length": 16})
write("llada-instruct", "config.json", {
    "model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": 16, "n_heads": 2, "n_kv_heads": 2, "n_layers": 1,
    "mlp_hidden_size": 32, "vocab_size": 126464, "embedding_size": 126464, "max_sequence_length": 4096, "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5, "mask_token_id": MASK, "eos_token_id": EOS, "pad_token_id": EOS, "weight_tying": False,
    "include_bias": False, "block_type": "llama", "activation_type": "silu", "torch_dtype": "float32",
})
write("llada-instruct", "expected.json", {"stop_token": EOT, "prompts": {k: llada_ids(v) for k, v in CONVERSATIONS.items()}})

# ---------------------------------------------------------------- Dream-v0-Instruct-7B layout
D_EOS, IM_START, IM_END, D_BOS, D_MASK = 151643, 151644, 151645, 151665, 151666
DREAM_SPECIAL = [(D_EOS, "<|endoftext|>"), (IM_START, "<|im_start|>"), (IM_END, "<|im_end|>"), (D_BOS, "<|beginoftext|>"), (D_MASK, "<|mask|>")]
DREAM_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if message.role not in ['system', 'user', 'assistant'] %}
        {{- raise_exception('Conversation roles must be system, user or assistant, not ' + message.role) }}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""


def dream_ids(messages):
    """The Qwen2.5 template by hand: a system turn (the default one if none is given), then
    `<|im_start|>role\\ncontent<|im_end|>\\n` per turn, then the assistant header."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else "You are a helpful assistant."
    ids = [IM_START] + text("system\n" + system) + [IM_END] + text("\n")
    for m in messages:
        if m["role"] == "system":
            continue
        ids += [IM_START] + text(m["role"] + "\n" + m["content"].strip()) + [IM_END] + text("\n")
    return ids + [IM_START] + text("assistant\n")


write("dream-instruct", "vocab.json", BYTE_VOCAB)
write("dream-instruct", "merges.txt", "#version: 0.2\n")
write("dream-instruct", "tokenizer_config.json", {
    "add_bos_token": False, "add_prefix_space": False,
    "added_tokens_decoder": {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True} for i, c in DREAM_SPECIAL},
    "bos_token": "<|beginoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "mask_token": "<|mask|>",
    "model_max_length": 131072, "tokenizer_class": "DreamTokenizer", "chat_template": DREAM_TEMPLATE,
})
# Like Dream's own: no max_new_tokens (the policy's gen_length stays), steps, alg, top_p.
write("dream-instruct", "generation_config.json", {"bos_token_id": D_EOS, "eos_token_id": D_EOS, "pad_token_id": D_EOS, "mask_token_id": D_MASK,
                                                  "steps": 32, "temperature": 0.0, "top_p": 0.9, "top_k": None, "alg": "entropy"})
write("dream-instruct", "config.json", {
    "architectures": ["DreamModel"], "model_type": "Dream", "hidden_act": "silu", "hidden_size": 16, "intermediate_size": 32,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 152064, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None, "use_sliding_window": False,
    "tie_word_embeddings": False, "mask_token_id": D_MASK, "bos_token_id": D_EOS, "eos_token_id": D_EOS, "pad_token_id": D_EOS,
    "torch_dtype": "float32",
})
write("dream-instruct", "expected.json", {"stop_token": IM_END, "prompts": {k: dream_ids(v) for k, v in CONVERSATIONS.items()}})
print("wrote tests/fixtures/llada-instruct and tests/fixtures/dream-instruct")
