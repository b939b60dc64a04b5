assert second_largest([1, 2, 3, 4]) == 3
assert second_largest([5, 5, 5]) == None
assert second_largest([10, 8, 10, 7]) == 8
assert second_largest([-1, -2]) == -2
