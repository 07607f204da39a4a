"""The labelled PII corpus (`pii_corpus.jsonl`) and how a masker is scored on it.

Shared by the corpus tests (tests/guards/test_pii.py) and the benchmark
(benchmarks/bench_pii.py), so both report the same figures.

Each line of the corpus is one text, `class` "sensitive" (with the exact spans and kinds of the
PII in it) or "ordinary" (text that looks like PII to a naive pattern: dates, versions, IDs,
code identifiers, measurements). `split` says when a text was written: "dev" texts while the
recognizers were built and tuned (their figures are optimistic), "holdout" texts after the
recognizers were frozen (measured before any fix they prompted).

A predicted span counts for a gold span when it has the same kind and they overlap by at least
half of their union (IoU >= 0.5), one prediction per gold span.
"Masked" ignores the kind: the gold value is 90 % covered by some prediction, which is what
keeps it from the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("pii_corpus.jsonl")
KINDS = ("EMAIL", "PHONE", "CARD", "SSN", "IBAN", "IP", "SECRET")

Span = tuple[str, int, int]  # (kind, start, end)
Finder = Callable[[str], Sequence[Span]]


@dataclass(frozen=True)
class Sample:
    id: str
    cls: str
    split: str
    text: str
    spans: tuple[Span, ...]


def load_corpus(path: Path = CORPUS) -> list[Sample]:
    """The corpus, checked: every span's offsets point at its value, kinds are known, ids and
    texts are unique."""
    samples: list[Sample] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row: dict[str, Any] = json.loads(line)
        spans = []
        for s in row["spans"]:
            if s["kind"] not in KINDS:
                raise ValueError(f"{path.name}:{n}: unknown kind {s['kind']!r}")
            if row["text"][s["start"]:s["end"]] != s["value"]:
                raise ValueError(f"{path.name}:{n}: span {s['start']}:{s['end']} is not "
                                 f"{s['value']!r}")
            spans.append((s["kind"], s["start"], s["end"]))
        if row["class"] not in ("sensitive", "ordinary") or \
                (row["class"] == "sensitive") != bool(spans):
            raise ValueError(f"{path.name}:{n}: a sensitive text has spans, an ordinary none")
        if row.get("split") not in ("dev", "holdout"):
            raise ValueError(f"{path.name}:{n}: split must be 'dev' or 'holdout'")
        if row["id"] in seen or row["text"] in seen:
            raise ValueError(f"{path.name}:{n}: duplicate id or text")
        seen.update((row["id"], row["text"]))
        samples.append(Sample(row["id"], row["class"], row["split"], row["text"],
                              tuple(spans)))
    return samples


def _iou(a: Span, b: Span) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[1], b[1]))
    union = max(a[2], b[2]) - min(a[1], b[1])
    return inter / union if union else 0.0


def _covered(gold: Span, predicted: Sequence[Span]) -> bool:
    chars = set()
    for _, s, e in predicted:
        chars.update(range(max(s, gold[1]), min(e, gold[2])))
    return len(chars) >= 0.9 * (gold[2] - gold[1])


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Score:
    per_kind: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    masked: int = 0  # gold spans kept from the model whatever kind they were given
    gold: int = 0
    ordinary: int = 0
    ordinary_flagged: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (id, kind, value)
    false_alarms: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def overall(self) -> Counts:
        total = Counts()
        for c in self.per_kind.values():
            total.tp += c.tp
            total.fp += c.fp
            total.fn += c.fn
        return total

    @property
    def masked_recall(self) -> float:
        return self.masked / self.gold if self.gold else 1.0

    @property
    def ordinary_flag_rate(self) -> float:
        return self.ordinary_flagged / self.ordinary if self.ordinary else 0.0


def score(find: Finder, samples: Sequence[Sample]) -> Score:
    result = Score()
    for sample in samples:
        predicted = [p for p in find(sample.text) if p[0] in KINDS]
        used: set[int] = set()
        for gold in sample.spans:
            result.gold += 1
            if _covered(gold, predicted):
                result.masked += 1
            match = next((i for i, p in enumerate(predicted) if i not in used
                          and p[0] == gold[0] and _iou(p, gold) >= 0.5), None)
            if match is None:
                result.per_kind[gold[0]].fn += 1
                result.misses.append((sample.id, gold[0], sample.text[gold[1]:gold[2]]))
            else:
                used.add(match)
                result.per_kind[gold[0]].tp += 1
        for i, p in enumerate(predicted):
            if i not in used:
                result.per_kind[p[0]].fp += 1
                result.false_alarms.append((sample.id, p[0], sample.text[p[1]:p[2]]))
        if sample.cls == "ordinary":
            result.ordinary += 1
            result.ordinary_flagged += bool(predicted)
    return result
