import json, re
doc = json.loads('{"a": [1, 2.5, "x", null, true], "b": {"c": "\\u00e9"}}')
print(doc["a"], doc["b"]["c"])
print(json.dumps(doc, sort_keys=True))
print(json.dumps({"z": 1, "a": [1, 2]}, indent=2))
print(re.findall(r"(\w+)@(\w+)\.com", "ann@x.com, bob@y.com"))
print(re.sub(r"\s+", " ", "a   b\t\nc"), re.match(r"^(\d{3})-(\d{4})$", "555-1234").groups())
print(re.split(r"[,;]\s*", "a, b;c"), bool(re.search(r"colou?r", "The color red")))
