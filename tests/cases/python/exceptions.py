class AppError(Exception):
    pass

def risky(n):
    if n > 2:
        raise AppError(f"too big: {n}")
    return n

for i in range(5):
    try:
        risky(i)
    except AppError as e:
        print("caught", e)
    else:
        print("ok", i)
    finally:
        pass

try:
    {}["missing"]
except KeyError as e:
    print("KeyError", e)

try:
    try:
        1 / 0
    except ZeroDivisionError as e:
        raise ValueError("wrapped") from e
except ValueError as e:
    print(type(e.__cause__).__name__, e)

import traceback
try:
    int("x")
except ValueError:
    print(traceback.format_exc().strip().splitlines()[-1])
