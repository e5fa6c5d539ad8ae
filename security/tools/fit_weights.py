#!/usr/bin/env python3
"""Fits injection rule weights on the DEV half only (noisy-OR scoring, threshold 0.5).

Usage: python3 security/tools/fit_weights.py dev.jsonl security/src/injection.rs [LAMBDA=0.05]
Input: the JSON lines of `cargo run -p security --release --example dev_features`.
Output: the rows of `FITTED_WEIGHTS` (rules whose weight moved), recall/FPR on stderr.
Each rule r contributes c_r = -ln(1 - w_r); a text is flagged when sum(c_r) >= ln 2. Weights
are fitted by logistic loss on alpha * (sum c - ln 2), kept >= 0, pulled toward the hand-set
weights (L2), with benign samples weighted up (false positives cost more)."""
import json, math, re, sys

src = open(sys.argv[2]).read()
levels = {"STRONG": 0.9, "MEDIUM": 0.6, "WEAK": 0.25, "HINT": 0.1}
hand = {m.group(1): levels[m.group(2)] for m in re.finditer(r'"(injection\.[a-z0-9_.]+)",\s*(STRONG|MEDIUM|WEAK|HINT)', src)}
rows = [json.loads(l) for l in open(sys.argv[1])]
rules = sorted({r for row in rows for r in row["rules"]} | set(hand))
fixed = {r for r in rules if r not in hand}  # encodings, invisible: scanner constants
c0 = {r: -math.log(1 - hand.get(r, 0.9 if "encoding" in r else 0.1)) for r in rules}
c = dict(c0)
CAP = -math.log(1 - 0.9)
alpha, lam, neg_w, lr = 3.0, float(sys.argv[3]) if len(sys.argv) > 3 else 0.05, 4.0, 0.05
ln2 = math.log(2)
for epoch in range(400):
    grad = {r: 0.0 for r in rules}
    for row in rows:
        s = sum(c[r] for r in row["rules"])
        z = alpha * (s - ln2)
        p = 1 / (1 + math.exp(-max(-30, min(30, z))))
        y = 1.0 if row["injection"] else 0.0
        w = 1.0 if y else neg_w
        g = w * (p - y) * alpha
        for r in row["rules"]:
            grad[r] += g
    for r in rules:
        if r in fixed:
            continue
        grad[r] = grad[r] / len(rows) + 2 * lam * (c[r] - c0[r])
        c[r] = min(CAP, max(0.0, c[r] - lr * grad[r] * 10))
def stats(weights):
    tp = fp = fn = tn = 0
    for row in rows:
        flagged = sum(weights[r] for r in row["rules"]) >= ln2
        if row["injection"]:
            tp += flagged; fn += not flagged
        else:
            fp += flagged; tn += not flagged
    return tp / (tp + fn), fp / (fp + tn)
print("hand   recall %.3f fpr %.3f" % stats(c0), file=sys.stderr)
print("fitted recall %.3f fpr %.3f" % stats(c), file=sys.stderr)
for r in rules:
    if r in fixed:
        continue
    w = 1 - math.exp(-c[r])
    if abs(w - hand[r]) >= 0.01:
        print(f'    ("{r}", {w:.2f}),  // hand-set {hand[r]}')
