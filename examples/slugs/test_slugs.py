import pytest

from slugs import MAX_LENGTH, ascii_fold, slugify


@pytest.mark.parametrize("title, expected", [
    ("Hello World", "hello-world"),
    ("  Many   spaces  ", "many-spaces"),
    ("Crème brûlée", "creme-brulee"),
    ("Rock & Roll!", "rock-roll"),
])
def test_slugify(title, expected):
    assert slugify(title) == expected


@pytest.mark.parametrize("sep", ["_", "."])
def test_separator(sep):
    assert slugify("a b c", sep=sep) == sep.join("abc")


@pytest.fixture
def long_title():
    return "word " * 30


def test_length(long_title):
    assert len(slugify(long_title)) <= MAX_LENGTH


def test_ascii_fold():
    assert ascii_fold("Crème") == "Creme"
