//! A log-linear latency histogram: exact below 64 µs, then 32 linear buckets per power of two
//! (relative error under 3.2 %), in a fixed 15 KiB array. Recording is an index computation
//! and an increment; histograms of several generator threads merge by adding counts.

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS; // 32
const LINEAR_LIMIT: u64 = 2 * SUB; // values below this have their own bucket
const BUCKETS: usize = (LINEAR_LIMIT as usize) + (64 - (SUB_BITS as usize + 1)) * SUB as usize;

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

fn index(v: u64) -> usize {
    if v < LINEAR_LIMIT {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // ≥ SUB_BITS + 1
    let shift = exp - SUB_BITS;
    let top = (v >> shift) - SUB; // 0..SUB
    LINEAR_LIMIT as usize + (exp - SUB_BITS - 1) as usize * SUB as usize + top as usize
}

/// Largest value that lands in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if (i as u64) < LINEAR_LIMIT {
        return i as u64;
    }
    let j = i - LINEAR_LIMIT as usize;
    let exp = (j / SUB as usize) as u32 + SUB_BITS + 1;
    let top = (j % SUB as usize) as u64 + SUB;
    let shift = exp - SUB_BITS;
    ((top + 1) << shift).wrapping_sub(1)
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.sum += micros as u128;
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += *b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket holding it, never more
    /// than the largest value recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev = None;
        for v in (0..2_000_000u64).step_by(7).chain([u64::MAX / 3, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(upper_bound(i) >= v, "v={v} i={i}");
            if i > 0 {
                assert!(upper_bound(i - 1) < v, "v={v} i={i}");
            }
            if let Some(p) = prev {
                assert!(i >= p);
            }
            prev = Some(i);
            if v >= LINEAR_LIMIT {
                assert!((upper_bound(i) - v) as f64 / v as f64 <= 1.0 / SUB as f64);
            }
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.04, "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        let mut other = Histogram::default();
        other.record(5);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.quantile(0.0), 5);
    }
}
