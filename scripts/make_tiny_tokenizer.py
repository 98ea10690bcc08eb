#!/usr/bin/env python3
"""Writes models/tiny-llada/tokenizer.json: a word-level tokenizer for the 300-token tiny
LLaDA checkpoint (the oracle's randomly initialised model), so that the embedded default
model takes and prints text. The words are arbitrary; with random weights the output is
gibberish by construction. No dependencies beyond the standard library."""
import json, os, sys

WORDS = """the of and to in is was for on that with as by at from his it an were are which this
be or has had not but its also first one their new after who they have two been her she
he all other more most time only into over three some when can out up so many may we no
about would there then than these years each year between during under made him such
while later where since both well through them four used called about part well known
many before state city school number world being like high long second against over small
large before will war team number name early last city could however life now people
music took found day series area north south east west born around would until group
several play played film game work based great own home place country because river left
right still home five same little water light house money word words point make sure
word down back over just even most much good very still old big day way little own say
line turn move live form end does another well large must big even such because turn
here why ask went men read need land different home us move try kind hand picture again
change off play spell air away animal house point page letter mother answer found study
still learn should america world""".split()

def main(out):
    vocab = {"<unk>": 0}
    for w in WORDS:
        if len(vocab) >= 280:
            break
        if w not in vocab:
            vocab[w] = len(vocab)
    i = 0
    while len(vocab) < 280:
        vocab[f"w{i}"] = len(vocab); i += 1
    specials = {280: "<|eot|>", 290: "<|mask|>"}
    for k in range(280, 300):
        vocab[specials.get(k, f"<|reserved_{k}|>")] = k
    added = [{"id": k, "content": v, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for k, v in sorted(specials.items())]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
           "post_processor": None, "decoder": None,
           "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}
    with open(out, "w") as f:
        json.dump(tok, f, indent=1, ensure_ascii=False)
    print(f"wrote {out} ({len(vocab)} tokens)")

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "models", "tiny-llada", "tokenizer.json"))
