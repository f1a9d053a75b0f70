"""Text preparation shared by every model-based scorer (and by the head's training script).

- :func:`normalize_social` does what the TweetEval / cardiffnlp model cards ask: user mentions become
  ``@user`` and links become ``http``. Links are also replaced inside markdown (``[text](https://...)``), as
  Reddit posts carry them there.
- :func:`head_tail` keeps the beginning and the end of a token sequence that is longer than the model's
  limit. Long Reddit posts state their subject at the start and their verdict at the end; keeping a quarter
  of the budget from the head and three quarters from the tail is the split that worked best for long
  documents in Sun et al. (2019), "How to Fine-Tune BERT for Text Classification" (head 128 + tail 382).
- :func:`clip_chars` bounds the characters handed to a tokenizer first, so a 100 KB post costs no more to
  tokenize than a few thousand characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_MENTION = re.compile(r"(?<!\S)@\S+")
_URL = re.compile(r"https?://\S+|(?<!\S)http\S*|(?<!\S)www\.\S+")
#: share of the token budget taken from the start of a long text; the rest comes from its end
HEAD_SHARE = 0.25
#: characters kept per token of budget by :func:`clip_chars` (tokens average 3-5 characters)
CHARS_PER_TOKEN = 12


def valid_text(text: str) -> str:
    """``text`` with lone surrogates (invalid in UTF-8, refused by the tokenizers) replaced by ``?``."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def normalize_social(text: str) -> str:
    """``@someone`` -> ``@user`` and links -> ``http``, as the cardiffnlp model cards ask."""
    if "@" in text:
        text = _MENTION.sub("@user", text)
    if "http" in text or "www." in text:
        text = _URL.sub("http", text)
    return text


def split_budget(budget: int) -> tuple[int, int]:
    """(head, tail) token counts for a budget of ``budget`` content tokens."""
    head = int(budget * HEAD_SHARE)
    return head, budget - head


def head_tail(items: Sequence[T], budget: int) -> list[T]:
    """``items`` if it fits ``budget``, else its first quarter-budget and its last three quarters."""
    if len(items) <= budget:
        return list(items)
    head, tail = split_budget(budget)
    return [*items[:head], *items[len(items) - tail :]] if tail else list(items[:head])


def clip_chars(text: str, budget_tokens: int) -> str:
    """Cut the middle out of a text far longer than ``budget_tokens`` could cover (head and tail kept)."""
    limit = budget_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    head, tail = split_budget(limit)
    return text[:head] + " " + text[len(text) - tail :]
