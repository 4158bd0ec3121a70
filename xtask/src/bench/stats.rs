//! Medians, spreads, ratios and target verdicts over repeated measurements.

/// The median: the middle value, or the mean of the two middle ones. `None` when empty; NaNs
/// are left out.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    })
}

/// One figure over its repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    let median = median(values)?;
    let valid = values.iter().copied().filter(|v| !v.is_nan());
    Some(Spread {
        median,
        min: valid.clone().fold(f64::INFINITY, f64::min),
        max: valid.clone().fold(f64::NEG_INFINITY, f64::max),
        count: valid.count(),
    })
}

/// `measured / baseline`; `None` when either is missing or the baseline is not positive.
pub fn ratio(measured: Option<f64>, baseline: Option<f64>) -> Option<f64> {
    match (measured, baseline) {
        (Some(measured), Some(baseline)) if baseline > 0.0 => Some(measured / baseline),
        _ => None,
    }
}

/// Whether a target of the issue is met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// The figure could not be measured in this run, and why.
    NotMeasured(String),
}

impl Verdict {
    /// `value <= limit`, or why there is no value.
    pub fn at_most(value: Option<f64>, limit: f64, missing: &str) -> Verdict {
        match value {
            Some(value) if value <= limit => Verdict::Met,
            Some(_) => Verdict::NotMet,
            None => Verdict::NotMeasured(missing.to_string()),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Verdict::Met => "**met**".to_string(),
            Verdict::NotMet => "**not met**".to_string(),
            Verdict::NotMeasured(why) => format!("not measured: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn median_ignores_nan() {
        assert_eq!(median(&[f64::NAN, 5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn spread_reports_the_extremes() {
        let spread = spread(&[10.0, 30.0, 20.0, 90.0, 15.0]).unwrap();
        assert_eq!(spread.median, 20.0);
        assert_eq!((spread.min, spread.max, spread.count), (10.0, 90.0, 5));
    }

    #[test]
    fn ratio_needs_a_positive_baseline() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(3.0), None), None);
    }

    #[test]
    fn verdicts_compare_with_the_limit_inclusively() {
        assert_eq!(Verdict::at_most(Some(1.10), 1.10, "-"), Verdict::Met);
        assert_eq!(Verdict::at_most(Some(1.11), 1.10, "-"), Verdict::NotMet);
        assert_eq!(
            Verdict::at_most(None, 1.10, "no counting mode"),
            Verdict::NotMeasured("no counting mode".into())
        );
        assert!(Verdict::NotMet.label().contains("not met"));
    }
}
