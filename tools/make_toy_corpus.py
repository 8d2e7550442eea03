#!/usr/bin/env python3
"""Writes corpora/toy/: a tiny synthetic German-English corpus for tests and smoke runs.

Sentences come from a small grammar (subject, optional adjective, verb, optional place), so a
small model can learn them in seconds. Deterministic: run it again and the files are identical.
Usage: python3 tools/make_toy_corpus.py [OUT_DIR]
"""
import os
import random
import sys

# (German with each adjective form, English): determiner + adjective agree in German.
SUBJECTS = [
    ("der {a}Hund", "the {a}dog", "kleine |große |schwarze "),
    ("die {a}Katze", "the {a}cat", "kleine |große |schwarze "),
    ("ein {a}Mann", "a {a}man", "kleiner |großer |alter "),
    ("eine {a}Frau", "a {a}woman", "kleine |große |alte "),
    ("das {a}Kind", "the {a}child", "kleine |große |fröhliche "),
    ("ein {a}Junge", "a {a}boy", "kleiner |großer |fröhlicher "),
]
ADJ_EN = {
    "kleine ": "small ", "kleiner ": "small ", "große ": "big ", "großer ": "big ",
    "schwarze ": "black ", "alte ": "old ", "alter ": "old ", "fröhliche ": "happy ",
    "fröhlicher ": "happy ", "": "",
}
VERBS = [("läuft", "runs"), ("schläft", "sleeps"), ("spielt", "plays"),
         ("springt", "jumps"), ("sitzt", "sits"), ("lacht", "laughs")]
PLACES = [("", ""), (" im Park", " in the park"), (" am Strand", " on the beach"),
          (" im Schnee", " in the snow"), (" auf der Straße", " on the street"),
          (" im Wasser", " in the water")]


def all_pairs():
    for de_s, en_s, adjs in SUBJECTS:
        for adj in [""] + adjs.split("|"):
            for de_v, en_v in VERBS:
                for de_p, en_p in PLACES:
                    de = f"{de_s.format(a=adj)} {de_v}{de_p}."
                    en = f"{en_s.format(a=ADJ_EN[adj])} {en_v}{en_p}."
                    yield de[0].upper() + de[1:], en[0].upper() + en[1:]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpora", "toy")
    pairs = list(all_pairs())
    random.Random(30).shuffle(pairs)
    splits = {"train": pairs[:300], "valid": pairs[300:330], "test": pairs[330:360]}
    os.makedirs(out, exist_ok=True)
    for name, rows in splits.items():
        for lang, col in (("de", 0), ("en", 1)):
            with open(os.path.join(out, f"{name}.{lang}"), "w", encoding="utf-8") as f:
                f.write("".join(r[col] + "\n" for r in rows))


if __name__ == "__main__":
    main()
