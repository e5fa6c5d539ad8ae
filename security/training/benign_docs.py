#!/usr/bin/env python3
"""Benign documents for training the injection model: pieces (512 B to 4 KiB) of source code,
READMEs and licences found on a Debian machine with Python installed. Deterministic (seeded).

    python3 benign_docs.py [OUT]      # default: corpora/benign_docs.jsonl

Sources (all openly licensed; the owning package's terms are in /usr/share/doc/<pkg>/copyright):
- the Python standard library's modules (PSF License), `sys.prefix/lib/python3.X/*.py`, tests
  excluded;
- /usr/share/doc/*/README*, *.md (each Debian package's own licence);
- /usr/share/common-licenses/* (the licence texts themselves);
- the cargo registry's crates (`~/.cargo/registry/src`) in the training half — FNV-1a of the
  crate's name even — under MIT or Apache-2.0 (each row's source names the crate);
  `long_benign` measures on the other half only.
"""
import glob
import gzip
import json
import os
import random
import sys
import sysconfig

here = os.path.dirname(os.path.abspath(__file__))
out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpora", "benign_docs.jsonl")
rng = random.Random(20261208)


def read(path):
    try:
        raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return None


groups = {
    "python-stdlib": sorted(p for p in glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True)
                            if "/test" not in p and "/idlelib/" not in p),
    "debian-doc": sorted(glob.glob("/usr/share/doc/*/README*") + glob.glob("/usr/share/doc/*/*.md*")),
    "licence": sorted(glob.glob("/usr/share/common-licenses/*")),
}


def fnv(text):
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def crate_files():
    """Rust sources and READMEs of the cargo registry's crates in the training half (FNV-1a of
    the crate's name even; `long_benign` measures on the odd half) whose licence is MIT or
    Apache-2.0 (read from their Cargo.toml)."""
    out = []
    for crate in sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/*"))):
        name = os.path.basename(crate).rsplit("-", 1)[0]
        if fnv(name) % 2 != 0:
            continue
        manifest = read(os.path.join(crate, "Cargo.toml")) or ""
        licence = next((l.split("=", 1)[1].strip().strip('"') for l in manifest.splitlines() if l.startswith("license")), "")
        if "MIT" not in licence and "Apache-2.0" not in licence:
            continue
        files = sorted(glob.glob(os.path.join(crate, "**", "*.rs"), recursive=True) + glob.glob(os.path.join(crate, "README*")))
        out.extend(files[:40])
    return out


groups["cargo-crates-train-half"] = crate_files()
quota = {"python-stdlib": 1400, "debian-doc": 800, "licence": 200, "cargo-crates-train-half": 1600}
rows = []
for group, paths in groups.items():
    texts = [(p, t) for p in paths if (t := read(p)) and len(t) >= 512]
    if not texts:
        continue
    for _ in range(quota[group]):
        path, text = rng.choice(texts)
        length = rng.choice([512, 1024, 2048, 4096])
        start = rng.randrange(0, max(1, len(text) - length))
        piece = text[start:start + length].strip()
        if len(piece) >= 256:
            where = path.split("/registry/src/", 1)[1].split("/", 1)[1] if "/registry/src/" in path else os.path.basename(path)
            rows.append({"text": piece, "label": "benign", "source": f"{group}/{where}",
                         "lang": "en", "tactic": "none"})
seen = set()
with open(out_path, "w", encoding="utf-8") as out:
    for row in rows:
        if row["text"] in seen:
            continue
        seen.add(row["text"])
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
print(out_path, len(seen))
