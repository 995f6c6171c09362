//! Duration percentiles in constant memory: a log-bucketed sketch (the DDSketch idea).
//!
//! Each duration `x > 0` goes into bucket `ceil(log_γ x)` with `γ = (1 + α) / (1 - α)`, α = 1%,
//! so any quantile is reported within 1% of the true value, whatever the number of events, in
//! at most a few thousand buckets (1 µs to 10 days). Sketches add bucket by bucket, which is what
//! lets `metrics.json` be updated incrementally and still equal a full rebuild exactly.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Relative accuracy of every reported quantile.
pub const ALPHA: f64 = 0.01;
/// Durations at or below this are counted as zero.
const MIN_POSITIVE: f64 = 1e-6;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// Count, sum, min, max and the bucketed distribution of one group's durations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sketch {
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    zero: u64,
    bins: BTreeMap<i32, u64>,
}

impl Sketch {
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        self.count += 1;
        self.sum += x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        if x <= MIN_POSITIVE {
            self.zero += 1;
        } else {
            let idx = (x.ln() / gamma().ln()).ceil() as i32;
            *self.bins.entry(idx).or_insert(0) += 1;
        }
    }

    /// The `q`-quantile (0..=1), within [`ALPHA`] relative error; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // Nearest rank: the smallest value with at least `q` of the values at or below it.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1) - 1;
        let (min, max) = (self.min.unwrap_or(0.0), self.max.unwrap_or(0.0));
        // The extremes are known exactly.
        if rank == 0 {
            return Some(min);
        }
        if rank == self.count - 1 {
            return Some(max);
        }
        let mut seen = self.zero;
        if rank < seen {
            return Some(0.0);
        }
        for (idx, n) in &self.bins {
            seen += n;
            if rank < seen {
                let g = gamma();
                let v = 2.0 * g.powi(*idx) / (g + 1.0);
                return Some(round3(v.clamp(min, max)));
            }
        }
        Some(max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| round3(self.sum / self.count as f64))
    }

    /// `{count, sum, min, max, zero, bins: {"idx": n}}`, lossless.
    pub fn to_json(&self) -> Value {
        let bins: Map<String, Value> = self
            .bins
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        json!({
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "zero": self.zero,
            "bins": bins,
        })
    }

    /// Reads what [`Sketch::to_json`] wrote.
    pub fn from_json(v: &Value) -> Option<Sketch> {
        let mut bins = BTreeMap::new();
        for (k, n) in v.get("bins")?.as_object()? {
            bins.insert(k.parse().ok()?, n.as_u64()?);
        }
        Some(Sketch {
            count: v.get("count")?.as_u64()?,
            sum: v.get("sum")?.as_f64()?,
            min: v.get("min").and_then(Value::as_f64),
            max: v.get("max").and_then(Value::as_f64),
            zero: v.get("zero")?.as_u64()?,
            bins,
        })
    }
}

/// Three decimals: percentiles are estimates; more digits would only be noise.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut s = Sketch::default();
        for i in 1..=10_000 {
            s.add(f64::from(i));
        }
        for (q, exact) in [(0.5, 5000.0), (0.95, 9500.0), (0.99, 9900.0)] {
            let got = s.quantile(q).unwrap();
            assert!((got - exact).abs() / exact <= 0.011, "{q}: {got}");
        }
        assert_eq!(s.quantile(1.0), Some(10_000.0));
        let back = Sketch::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn zeros_and_empty() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        s.add(0.0);
        s.add(0.0);
        s.add(5.0);
        s.add(f64::NAN);
        s.add(-1.0);
        assert_eq!(s.count, 3);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert_eq!(s.quantile(0.99), Some(5.0));
    }
}
