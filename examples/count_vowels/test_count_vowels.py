assert count_vowels("hello") == 2
assert count_vowels("PYTHON") == 1
assert count_vowels("rhythm") == 0
assert count_vowels("Programming Language") == 7
