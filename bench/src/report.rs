//! The final report: ordered `(key, value)` lines, rendered as text for stdout and as a JSON object for `--json`.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// An ordered list of results.
#[derive(Default)]
pub struct Report {
    entries: Vec<(String, Value)>,
}

impl Report {
    /// Appends one result.
    pub fn add(&mut self, key: &str, value: impl Into<Value>) {
        self.entries.push((key.to_string(), value.into()));
    }

    /// The results as one JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.entries.iter().cloned().collect::<Map<String, Value>>())
    }

    /// The results as aligned `key: value` lines.
    pub fn to_text(&self) -> String {
        let width = self.entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.entries {
            let rendered = match value {
                Value::Null => "n/a".to_string(),
                Value::String(s) => s.clone(),
                Value::Array(items) if items.is_empty() => "(none)".to_string(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        format!(
                            "\n    - {}",
                            i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())
                        )
                    })
                    .collect(),
                Value::Object(o) if o.contains_key("p50_ms") => {
                    let get = |k: &str| o.get(k).cloned().unwrap_or(Value::Null);
                    format!(
                        "p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({} samples)",
                        get("p50_ms"),
                        get("p99_ms"),
                        get("p999_ms"),
                        get("max_ms"),
                        get("count")
                    )
                }
                other => other.to_string(),
            };
            out.push_str(&format!("{key:width$} : {rendered}\n"));
        }
        out
    }
}

/// Latency summary of a microsecond histogram, in milliseconds.
pub fn latency(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

/// Rounds to two decimals for display.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_insertion_order() {
        let mut r = Report::default();
        r.add("zeta", 1);
        r.add("alpha", "x");
        r.add("errors", vec!["boom".to_string()]);
        r.add("rss", Value::Null);
        let text = r.to_text();
        assert!(text.find("zeta").unwrap() < text.find("alpha").unwrap());
        assert!(text.contains("    - boom"));
        assert!(text.contains("n/a"));
        assert_eq!(r.to_json()["zeta"], 1);
    }
}
