#!/usr/bin/env python3
"""Checks `d2c serve` with the official `openai` Python client (pip install openai):
completions and chat, streamed and not, and 64 concurrent requests, against a server
started as the README says (default base URL http://127.0.0.1:8080/v1)."""
import sys, concurrent.futures
from openai import OpenAI

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/v1"
client = OpenAI(base_url=base, api_key="unused")
model = client.models.list().data[0].id
c = client.completions.create(model=model, prompt="27 + 58 =", max_tokens=12)
assert c.choices[0].text == "085", c
r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "sort 9 4 7 1 3 ="}], extra_body={"policy": "d2cache", "policy_params": {"current_k": 8}})
assert r.choices[0].message.content == "1 3 4 7 9", r
parts = [ch.choices[0].delta.content or "" for ch in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "reverse a b c d e ="}], stream=True)]
assert "".join(parts) == "e d c b a", parts
parts = [ch.choices[0].text for ch in client.completions.create(model=model, prompt="copy k e y s o =", stream=True)]
assert "".join(parts) == "k e y s o", parts
def one(i):
    a, b = i % 100, (i * 7) % 100
    return client.completions.create(model=model, prompt=f"{a:02} + {b:02} =").choices[0].text == f"{a + b:03}"
with concurrent.futures.ThreadPoolExecutor(64) as ex:
    ok = sum(ex.map(one, range(64)))
assert ok == 64, ok
print(f"openai {__import__('openai').__version__}: completions, chat, streaming (chat and completions), 64 concurrent: all correct")
