//! A 2-D picture of some words: principal component analysis (the two directions of largest
//! variance, by power iteration with deflation on the covariance matrix) and an SVG scatter
//! with the words as labels. Labels are UTF-8 text in a font list that covers Chinese, so a
//! browser draws 词向量 as characters, not boxes.

/// Project `rows` (n × dim) onto their first two principal components.
pub fn project_2d(rows: &[Vec<f32>]) -> Vec<(f64, f64)> {
    let n = rows.len();
    if n == 0 {
        return Vec::new();
    }
    let dim = rows[0].len();
    let mean: Vec<f64> = (0..dim).map(|k| rows.iter().map(|r| r[k] as f64).sum::<f64>() / n as f64).collect();
    let x: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().zip(&mean).map(|(a, m)| *a as f64 - m).collect()).collect();
    let mut cov = vec![0f64; dim * dim];
    for r in &x {
        for i in 0..dim {
            for j in 0..dim {
                cov[i * dim + j] += r[i] * r[j];
            }
        }
    }
    let mut comps: Vec<Vec<f64>> = Vec::new();
    for c in 0..2 {
        let mut v: Vec<f64> = (0..dim).map(|k| 1.0 + ((k * 7 + c * 3) % 11) as f64 / 10.0).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..dim).map(|i| (0..dim).map(|j| cov[i * dim + j] * v[j]).sum()).collect();
            for p in &comps {
                let d: f64 = w.iter().zip(p).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(p).for_each(|(a, b)| *a -= d * b);
            }
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            w.iter_mut().for_each(|a| *a /= norm);
            let done = (norm - lambda).abs() <= 1e-12 * norm;
            lambda = norm;
            v = w;
            if done {
                break;
            }
        }
        comps.push(v);
    }
    x.iter()
        .map(|r| {
            let p = |c: &Vec<f64>| r.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
            (p(&comps[0]), p(&comps[1]))
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG scatter of labelled points.
pub fn svg(points: &[(f64, f64)], labels: &[String], title: &str) -> String {
    let (w, h, pad) = (900.0, 700.0, 60.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let sx = if x1 > x0 { (w - 2.0 * pad) / (x1 - x0) } else { 1.0 };
    let sy = if y1 > y0 { (h - 2.0 * pad) / (y1 - y0) } else { 1.0 };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <g font-family=\"'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', 'WenQuanYi Micro Hei', 'Noto Sans', 'DejaVu Sans', sans-serif\">\n\
         <text x=\"{pad}\" y=\"30\" font-size=\"18\">{}</text>\n",
        escape(title)
    );
    for (&(x, y), label) in points.iter().zip(labels) {
        let px = pad + (x - x0) * sx;
        let py = h - pad - (y - y0) * sy;
        s += &format!(
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"#c0392b\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"14\">{}</text>\n",
            px + 5.0,
            py - 4.0,
            escape(label)
        );
    }
    s += "</g>\n</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_main_direction() {
        // Points along (1, 1, 0) with a little spread along (0, 0, 1): PC1 separates them by
        // their position on the line.
        let rows: Vec<Vec<f32>> = (0..10).map(|i| vec![i as f32, i as f32, (i % 2) as f32 * 0.1]).collect();
        let p = project_2d(&rows);
        let d01 = (p[1].0 - p[0].0).abs();
        assert!((d01 - 2f64.sqrt()).abs() < 1e-2, "{d01}");
        assert!(p.iter().all(|q| q.1.abs() < 0.2));
    }

    #[test]
    fn pca_svg_keeps_chinese_labels_and_escapes() {
        let s = svg(&[(0.0, 0.0), (1.0, 1.0)], &["词向量".into(), "a<b".into()], "map");
        assert!(s.contains(">词向量</text>") && s.contains("a&lt;b") && s.contains("Noto Sans CJK SC"));
    }
}
