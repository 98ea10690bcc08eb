#!/usr/bin/env python3
"""Write a token-frequency table in the format PC-Sampler's reference reads
({"num_token": N, "p_baseline_dict": {"<id>": count}}) from a tasks file (JSON lines with
"prompt" and "answer"), tokenized with a model folder's WordPiece tokenizer.json.

Usage: scripts/token_freq.py MODEL_DIR TASKS.jsonl > MODEL_DIR/token_freq.json
The shipped models/tiny-tasks/token_freq.json is `scripts/token_freq.py models/tiny-tasks
tasks/heldout.jsonl`: counts over prompts and answers, each answer followed by one EOS.
"""
import json
import sys
from collections import Counter


def wordpiece(vocab, word):
    if word in vocab:
        return [vocab[word]]
    out, rest = [], word
    while rest:
        for end in range(len(rest), 0, -1):
            piece = rest[:end] if not out else "##" + rest[:end]
            if piece in vocab:
                out.append(vocab[piece])
                rest = rest[end:]
                break
        else:
            return [vocab["[UNK]"]]
    return out


def main():
    model, tasks = sys.argv[1], sys.argv[2]
    tok = json.load(open(f"{model}/tokenizer.json"))
    vocab = tok["model"]["vocab"]
    eos = vocab.get("<|eos|>")
    counts = Counter()
    for line in open(tasks):
        ex = json.loads(line)
        for text in (ex["prompt"], ex["answer"]):
            for word in text.lower().split():
                counts.update(wordpiece(vocab, word))
        if eos is not None:
            counts[eos] += 1
    n = sum(counts.values())
    table = {"num_token": n, "p_baseline_dict": {str(k): v for k, v in sorted(counts.items())}}
    json.dump(table, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
