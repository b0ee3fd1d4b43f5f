"""Researcher-written texts as paragraphs: blank lines separate paragraphs, single line breaks are spaces."""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape, format_html_join
from django.utils.safestring import SafeString

from study.counts import ScreenCounts, fill_counts

register = template.Library()


@register.filter
def paragraphs(text: str, counts: ScreenCounts | None = None) -> SafeString:
    """Like YAML folded text: what reads well in a study file reads well on the page (HTML is escaped).

    With `counts`, `{images}` and `{practice}` become the numbers the participant will see.
    """
    if counts is not None:
        text = fill_counts(text or "", counts)
    blocks = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", text or "")]
    return format_html_join("\n", "<p>{}</p>", ((escape(b),) for b in blocks if b.strip()))
