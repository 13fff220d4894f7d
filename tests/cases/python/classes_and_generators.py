from dataclasses import dataclass, field
from collections import Counter, defaultdict, OrderedDict, deque, namedtuple
import itertools, functools

class Shape:
    def area(self):
        raise NotImplementedError
    def __repr__(self):
        return f"{type(self).__name__}(area={self.area():.1f})"

class Square(Shape):
    def __init__(self, side):
        self.side = side
    def area(self):
        return self.side ** 2

@dataclass(order=True)
class Item:
    price: float
    name: str = field(compare=False)

print(sorted([Square(3), Square(1)], key=lambda s: s.area()))
print(sorted([Item(3.5, "b"), Item(1.25, "a")]))

def fib():
    a, b = 0, 1
    while True:
        yield a
        a, b = b, a + b

print(list(itertools.islice(fib(), 12)))
print(sum(x * x for x in range(10) if x % 2), [y for y in (i * 2 for i in range(4))])
print(Counter("mississippi").most_common(2))
d = defaultdict(list)
for k, v in [("a", 1), ("b", 2), ("a", 3)]:
    d[k].append(v)
print(dict(d), deque([1, 2, 3], maxlen=2), list(OrderedDict(x=1, y=2).items()))
P = namedtuple("P", "x y")
print(P(1, 2), functools.reduce(lambda a, b: a * b, range(1, 6)))

@functools.lru_cache(maxsize=None)
def ways(n):
    return 1 if n < 2 else ways(n - 1) + ways(n - 2)
print(ways(80))
print(list(itertools.permutations("abc", 2))[:3], list(itertools.accumulate([1, 2, 3])))
