//! JSON as every reader of the crate takes it: an object that repeats a key is refused (serde_json
//! keeps the last of repeated keys silently, so `{"score": 0, "score": 1}` would read as 1), and
//! a leading byte-order mark is skipped.

use std::collections::HashSet;

use serde_json::Value;

/// A JSON value read only to check that no object in it repeats a key (serde_json keeps the
/// last of repeated keys silently).
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<UniqueKeys, A::Error> {
                let mut seen = HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "key {key:?} appears twice in one object"
                        )));
                    }
                    map.next_value::<UniqueKeys>()?;
                }
                Ok(UniqueKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<UniqueKeys, A::Error> {
                while seq.next_element::<UniqueKeys>()?.is_some() {}
                Ok(UniqueKeys)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Checks that no object in the JSON `text` repeats a key (a leading byte-order mark skipped).
///
/// # Errors
///
/// serde_json's error for malformed JSON, or one naming the repeated key.
pub(crate) fn check_unique_keys(text: &str) -> std::result::Result<(), serde_json::Error> {
    serde_json::from_str::<UniqueKeys>(strip_bom(text)).map(|_| ())
}

/// `text` as JSON, refusing an object that repeats a key; a leading byte-order mark (which some
/// Windows tools write) is skipped.
///
/// # Errors
///
/// As [`check_unique_keys`].
pub(crate) fn parse(text: &str) -> std::result::Result<Value, serde_json::Error> {
    check_unique_keys(text)?;
    serde_json::from_str(strip_bom(text))
}

/// `text` without a leading UTF-8 byte-order mark.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth_and_a_bom_skipped() {
        assert_eq!(
            parse("\u{feff}{\"a\": [1, {\"b\": 2}]}").unwrap()["a"][1]["b"],
            2
        );
        for text in [r#"{"a": 1, "a": 2}"#, r#"[{"m": {"t": "x", "t": "y"}}]"#] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("appears twice in one object"), "{e}");
        }
        assert!(parse("\u{feff}\u{feff}{}").is_err(), "one mark only");
    }
}
