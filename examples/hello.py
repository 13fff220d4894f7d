# A first script: the sandbox prints, computes, and hands back a JSON result.
import json
from collections import Counter

words = "the quick brown fox jumps over the lazy dog the end".split()
counts = Counter(words)
print("most common:", counts.most_common(2))
result = {"words": len(words), "distinct": len(counts)}
