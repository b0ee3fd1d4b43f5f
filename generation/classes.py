"""ImageNet-1k class names (the BigGAN label space), shipped as data so no nltk/wordnet is needed."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "data" / "imagenet_classes.json"


@cache
def imagenet_classes() -> tuple[tuple[str, ...], ...]:
    """The 1000 classes in index order; each is its WordNet synonyms, the first being the display name."""
    rows = json.loads(TABLE.read_text(encoding="utf-8"))
    if len(rows) != 1000:
        raise RuntimeError(f"{TABLE} must list 1000 classes, found {len(rows)}")
    return tuple(tuple(row) for row in rows)


def class_name(index: int | None) -> str:
    """Display name of an ImageNet class index ('' outside the table, e.g. for small test models)."""
    if index is None or not 0 <= index < 1000:
        return ""
    return imagenet_classes()[index][0]


def class_index(name: str) -> int:
    """Resolve a class name (any synonym, case-insensitive); the display name wins over synonyms.

    Raises ValueError with the candidates when the name is unknown or ambiguous (e.g. 'crane').
    """
    wanted = name.strip().lower()
    primary = [i for i, row in enumerate(imagenet_classes()) if row[0].lower() == wanted]
    if len(primary) == 1:
        return primary[0]
    matches = primary or [i for i, row in enumerate(imagenet_classes()) if wanted in (s.lower() for s in row)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"unknown ImageNet class name {name!r}")
    listed = ", ".join(f"{i} ({', '.join(imagenet_classes()[i][:2])})" for i in matches)
    raise ValueError(f"ambiguous ImageNet class name {name!r}: use an index, one of {listed}")
