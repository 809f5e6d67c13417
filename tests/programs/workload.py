# workload.py — a small deterministic Python workload for the transparency tests: its
# output must be byte-identical with and without arenashim preloaded.
import hashlib
import json
import random
import sys

rng = random.Random(12345)
records = []
for i in range(20000):
    name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12)))
    records.append({"id": i, "name": name, "score": rng.random() * 100, "tags": [name[:2], str(i % 17)]})

by_prefix = {}
for r in records:
    by_prefix.setdefault(r["name"][:1], []).append(r)
summary = {k: (len(v), round(sum(x["score"] for x in v) / len(v), 6)) for k, v in sorted(by_prefix.items())}
print(json.dumps(summary, sort_keys=True))

ranked = sorted(records, key=lambda r: (-r["score"], r["name"]))[:20]
print([(r["id"], r["name"]) for r in ranked])

text = json.dumps(records, sort_keys=True)
print(len(text), hashlib.sha256(text.encode()).hexdigest())
back = json.loads(text)
assert back == records

words = " ".join(r["name"] for r in records).split()
counts = {}
for w in words:
    counts[w[:3]] = counts.get(w[:3], 0) + 1
print(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:15])

big = [str(i) * (i % 50) for i in range(30000)]
print(hashlib.md5("".join(big).encode()).hexdigest(), sum(map(len, big)))
numbers = [rng.randint(-10**12, 10**12) for _ in range(100000)]
numbers.sort()
print(numbers[:3], numbers[-3:], sum(numbers) % 1000003)
print(hashlib.blake2b(repr(sorted(set(numbers[::7]))).encode()).hexdigest())
sys.stdout.flush()
