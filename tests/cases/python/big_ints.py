n = 2 ** 200
print(n)
print(n * n - 1)
print(len(str(3 ** 1000)), 3 ** 1000 % 1000007)
import math
print(math.factorial(30), math.gcd(2 ** 64, 6 ** 20), math.isqrt(10 ** 40))
print((-2) ** 127 // 3, (10 ** 30).bit_length(), int("1" * 50) + 1)
