//! Parsing a script's JSON on the host within a memory budget.
//!
//! A parsed `Value` can take many times the bytes of its text (`[0,0,…]` spends 2 bytes of text
//! per 32-byte `Value`, and a growing list doubles its allocation), so a size check on the text
//! alone still lets a script make the host allocate gigabytes. This parser counts what it
//! allocates as it goes, before each allocation, and stops as soon as the count passes the
//! budget. Depth is bounded by `serde_json`'s recursion limit (128 levels).

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What a map entry costs beside its key's text and its value: the key's `String`, the value's
/// slot, and a B-tree node's share (its nodes run from half to completely full).
const MAP_ENTRY_BYTES: usize = 2 * (size_of::<String>() + size_of::<Value>());

/// Why a text was not parsed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParseError {
    /// The value needs more than the budget.
    #[error("it needs more than {budget} bytes of host memory")]
    OverBudget {
        /// The budget it passed.
        budget: usize,
    },
    /// The text is not JSON, or is nested too deeply.
    #[error("{0}")]
    Invalid(serde_json::Error),
}

/// `text` parsed as one JSON value, and the bytes it occupies (an estimate that never falls
/// short of what the parser allocated), when that is at most `budget`.
pub(crate) fn parse(text: &[u8], budget: usize) -> Result<(Value, usize), ParseError> {
    let used = Cell::new(0);
    let seed = Counted {
        used: &used,
        budget,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok((value, used.get())),
        Err(_) if used.get() > budget => Err(ParseError::OverBudget { budget }),
        Err(error) => Err(ParseError::Invalid(error)),
    }
}

/// Builds a `Value` like `serde_json`'s own visitor, charging every allocation first.
#[derive(Clone, Copy)]
struct Counted<'a> {
    used: &'a Cell<usize>,
    budget: usize,
}

impl Counted<'_> {
    fn charge<E: serde::de::Error>(self, bytes: usize) -> Result<(), E> {
        let used = self.used.get().saturating_add(bytes);
        self.used.set(used);
        if used > self.budget {
            // The message is replaced by `ParseError::OverBudget`, which reads `used`.
            return Err(E::custom("over the memory budget"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        // The top-level value's own slot.
        self.charge(size_of::<Value>())?;
        deserializer.deserialize_any(Inner(self))
    }
}

/// The visitor of one value whose slot its container already charged.
#[derive(Clone, Copy)]
struct Inner<'a>(Counted<'a>);

impl<'de> DeserializeSeed<'de> for Inner<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Inner<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Value, E> {
        self.0.charge(value.len())?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Value, E> {
        self.0.charge(value.capacity())?;
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items: Vec<Value> = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            if items.len() == items.capacity() {
                // The growth `push` is about to make: double, at least four slots.
                let grown = (items.capacity() * 2).max(4);
                self.0
                    .charge((grown - items.capacity()) * size_of::<Value>())?;
                items.reserve_exact(grown - items.len());
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Map::new();
        // A key is allocated before it can be charged; the text's own size bounds it.
        while let Some(key) = map.next_key::<String>()? {
            self.0.charge(key.capacity() + MAP_ENTRY_BYTES)?;
            let value = map.next_value_seed(self)?;
            entries.insert(key, value);
        }
        Ok(Value::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_fits_and_reports_its_size() {
        let (value, used) = parse(br#"{"a": [1, "two", null], "b": {}}"#, 1 << 20).expect("fits");
        assert_eq!(value, serde_json::json!({"a": [1, "two", null], "b": {}}));
        assert!(used >= 3 * size_of::<Value>(), "{used}");
    }

    #[test]
    fn stops_at_the_budget_long_before_the_text_ends() {
        let text = format!("[{}0]", "0,".repeat(1 << 20));
        let error = parse(text.as_bytes(), 64 << 10).expect_err("over");
        assert!(matches!(error, ParseError::OverBudget { budget } if budget == 64 << 10));
    }

    #[test]
    fn keeps_the_recursion_limit() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            parse(text.as_bytes(), 1 << 20),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn refuses_trailing_text() {
        assert!(matches!(
            parse(b"{} {}", 1 << 20),
            Err(ParseError::Invalid(_))
        ));
    }
}
