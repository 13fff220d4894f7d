s = "naïve café — 日本語 🐍"
print(s, len(s), s.upper())
print(s.encode("utf-8")[:12], "é".encode("utf-8"), b"\xc3\xa9".decode())
print("straße".casefold(), "ﬁ".upper(), "Σίσυφος".lower())
print(sorted(["b", "é", "a", "z"]), "🐍" * 3, ord("🐍"), chr(0x1F600))
print("|".join(reversed("añb")), "日本".center(6, "*"))
