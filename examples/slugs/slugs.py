"""URL slugs for article titles."""

import re
import unicodedata

MAX_LENGTH = 40


def ascii_fold(text):
    """`text` without accents: 'Crème brûlée' -> 'Creme brulee'."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def slugify(title, sep="-"):
    """A URL slug for `title`: accents removed, lower case, runs of anything but
    letters and digits replaced by one `sep`, no `sep` at either end, at most
    MAX_LENGTH characters."""
    raise NotImplementedError


class Article:
    def __init__(self, title):
        self.title = title

    @property
    def url(self):
        return "/articles/" + slugify(self.title)
