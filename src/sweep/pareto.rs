//! The Pareto frontier of points where both coordinates are better smaller (device bytes
//! against test error): the points no other point beats on both.

/// Indices of the non-dominated points, by increasing x: a point is dominated when another
/// is no worse on both coordinates and better on one. Points with a NaN are left out.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| !points[i].0.is_nan() && !points[i].1.is_nan())
        .collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (points[a], points[b]);
        pa.0.total_cmp(&pb.0).then(pa.1.total_cmp(&pb.1))
    });
    let mut kept: Vec<usize> = Vec::new();
    let mut best_y = f64::INFINITY;
    for i in order {
        let (x, y) = points[i];
        if y < best_y {
            kept.push(i);
            best_y = y;
        } else if y == best_y
            && let Some(&last) = kept.last()
            && points[last].0 == x
        {
            // The same point twice: both are on the frontier.
            kept.push(i);
        }
    }
    kept
}
