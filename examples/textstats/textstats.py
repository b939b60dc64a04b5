"""Small text statistics for the weekly report."""

import re
from collections import Counter

WORD = re.compile(r"[a-z']+")


def words(text):
    """The lower-cased words of `text`, in order."""
    return WORD.findall(text.lower())


def top_words(text, n):
    """The `n` most common words of `text` as (word, count) pairs: most common
    first, ties in alphabetical order.

    >>> top_words("the cat and the hat", 2)
    [('the', 2), ('and', 1)]
    >>> top_words("b a b a c", 3)
    [('a', 2), ('b', 2), ('c', 1)]
    >>> top_words("", 5)
    []
    """
    ...


def summary(text):
    """One line for the report: the word count and the three most common words."""
    common = ", ".join(word for word, _ in top_words(text, 3))
    return f"{len(words(text))} words; most common: {common}"
