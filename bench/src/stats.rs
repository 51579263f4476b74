//! The statistics every table uses: medians, spreads and paired
//! differences. Figures are medians, never means: one disturbed sample
//! must not move them. Each function sorts the slice it is given.

use std::time::Duration;

/// The median; the mean of the two middle values for an even count.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Half the interquartile range: how far apart samples of the same code
/// land, so a difference smaller than it is noise. The quartiles are the
/// samples nearest to them, not interpolated.
pub fn half_iqr(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.75) - q(0.25)) / 2.0
}

/// Median, min and max.
pub fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    let m = median(&mut v);
    (m, v[0], v[v.len() - 1])
}

/// The middle duration in ms: the upper of the two middle ones for an
/// even count (the startup table has always taken that one).
pub fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// `a[i] - b[i]` for each pair of samples taken next to each other: the
/// machine's slow drifts cancel in each difference.
pub fn paired_differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

/// The median of paired differences and half their interquartile range.
pub fn median_and_half_iqr(mut d: Vec<f64>) -> (f64, f64) {
    let m = median(&mut d);
    (m, half_iqr(&mut d))
}

/// The least-squares slope of `points` (x, y): how fast y moves per unit
/// of x over the whole series, not just between its two ends.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    cov / var
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_gradient() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
    }

    #[test]
    fn median_of_an_odd_count_is_the_middle_sample() {
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_two_middle_samples() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn median_ignores_one_wild_sample() {
        assert_eq!(median(&mut [10.0, 11.0, 9.0, 1e9, 10.0]), 10.0);
    }

    #[test]
    fn half_iqr_is_half_the_distance_between_the_quartile_samples() {
        // Quartiles of 1..=9 at indices 2 and 6: 3 and 7.
        let mut v: Vec<f64> = (1..=9).rev().map(f64::from).collect();
        assert_eq!(half_iqr(&mut v), 2.0);
    }

    #[test]
    fn half_iqr_rounds_quartile_positions_to_the_nearest_sample() {
        // Four samples: positions 0.75 and 2.25 round to 1 and 2.
        assert_eq!(half_iqr(&mut [0.0, 10.0, 20.0, 30.0]), 5.0);
    }

    #[test]
    fn half_iqr_of_identical_samples_is_zero() {
        assert_eq!(half_iqr(&mut [7.0; 5]), 0.0);
    }

    #[test]
    fn median_min_max_gives_the_extremes_beside_the_median() {
        assert_eq!(median_min_max(vec![3.0, 9.0, 1.0, 4.0]), (3.5, 1.0, 9.0));
    }

    #[test]
    fn median_ms_takes_the_upper_middle_of_an_even_count() {
        let v = [4, 1, 3, 2].map(Duration::from_millis).to_vec();
        assert_eq!(median_ms(v), 3.0);
    }

    #[test]
    fn paired_differences_subtract_pair_by_pair() {
        assert_eq!(
            paired_differences(&[10.0, 12.0, 11.0], &[9.0, 10.0, 11.5]),
            vec![1.0, 2.0, -0.5]
        );
    }

    #[test]
    fn paired_differences_stop_at_the_shorter_list() {
        assert_eq!(paired_differences(&[1.0, 2.0, 3.0], &[1.0]), vec![0.0]);
    }

    #[test]
    fn a_shared_drift_cancels_in_paired_differences() {
        // Both programs drift up by 5 per round; the one 2 ns dearer stays 2 ns dearer.
        let bare = [50.0, 55.0, 60.0, 65.0, 70.0];
        let prog: Vec<f64> = bare.iter().map(|b| b + 2.0).collect();
        let (m, spread) = median_and_half_iqr(paired_differences(&prog, &bare));
        assert_eq!((m, spread), (2.0, 0.0));
    }

    #[test]
    fn median_and_half_iqr_of_differences() {
        let (m, spread) = median_and_half_iqr(vec![1.0, 5.0, 2.0, 4.0, 3.0]);
        assert_eq!((m, spread), (3.0, 1.0));
    }
}
