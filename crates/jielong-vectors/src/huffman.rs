//! The Huffman tree of hierarchical softmax, built as word2vec.c builds it: words sorted by
//! count (most frequent first), two pointers walking the leaves upward and the inner nodes
//! forward, the second-smallest of each merge getting bit 1. Each word gets the path from the
//! root to its leaf: `codes` (the bits) and `points` (the inner nodes, root = `V − 2`, whose
//! rows in the output matrix are the classifiers along the way).

#[derive(Debug, Clone, Default)]
pub struct Huffman {
    /// Per word, bits from the root down.
    pub codes: Vec<Vec<u8>>,
    /// Per word, inner-node indices from the root down (same length as its code).
    pub points: Vec<Vec<u32>>,
}

impl Huffman {
    /// `counts` must be sorted in descending order (as a [`crate::Vocab`] is).
    pub fn new(counts: &[u64]) -> Self {
        let v = counts.len();
        if v < 2 {
            // One word: nothing to decide; an empty path (the loss is zero).
            return Huffman { codes: vec![Vec::new(); v], points: vec![Vec::new(); v] };
        }
        let mut count: Vec<u64> = counts.to_vec();
        count.resize(2 * v, u64::MAX / 4);
        let mut parent = vec![0usize; 2 * v];
        let mut binary = vec![0u8; 2 * v];
        let mut pos1 = v as isize - 1;
        let mut pos2 = v;
        let pick = |count: &Vec<u64>, pos1: &mut isize, pos2: &mut usize| -> usize {
            if *pos1 >= 0 && count[*pos1 as usize] < count[*pos2] {
                *pos1 -= 1;
                (*pos1 + 1) as usize
            } else {
                *pos2 += 1;
                *pos2 - 1
            }
        };
        for a in 0..v - 1 {
            let min1 = pick(&count, &mut pos1, &mut pos2);
            let min2 = pick(&count, &mut pos1, &mut pos2);
            count[v + a] = count[min1] + count[min2];
            parent[min1] = v + a;
            parent[min2] = v + a;
            binary[min2] = 1;
        }
        let root = 2 * v - 2;
        let mut codes = Vec::with_capacity(v);
        let mut points = Vec::with_capacity(v);
        for a in 0..v {
            let mut code = Vec::new();
            let mut point = Vec::new();
            let mut b = a;
            while b != root {
                code.push(binary[b]);
                b = parent[b];
                point.push((b - v) as u32);
            }
            code.reverse();
            point.reverse();
            codes.push(code);
            points.push(point);
        }
        Huffman { codes, points }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_codes_match_hand_built_tree() {
        // Counts 5, 3, 2, 1 (V = 4). Merges, as word2vec.c makes them:
        //   node 4 = {w3 (1), w2 (2)} = 3, bit 1 to w2;
        //   node 5 = {node 4 (3), w1 (3)} = 6 (ties go to the inner node first), bit 1 to w1;
        //   node 6 = {w0 (5), node 5 (6)} = 11, the root, bit 1 to node 5.
        // Paths from the root (inner node i is point i − V: root 2, node 5 → 1, node 4 → 0).
        let h = Huffman::new(&[5, 3, 2, 1]);
        assert_eq!(h.codes, vec![vec![0], vec![1, 1], vec![1, 0, 1], vec![1, 0, 0]]);
        assert_eq!(h.points, vec![vec![2], vec![2, 1], vec![2, 1, 0], vec![2, 1, 0]]);
    }

    #[test]
    fn huffman_is_prefix_free_and_frequent_words_are_short() {
        let counts: Vec<u64> = (1..=50u64).rev().map(|i| i * i).collect();
        let h = Huffman::new(&counts);
        for i in 0..counts.len() {
            for j in 0..counts.len() {
                if i != j {
                    assert!(!h.codes[j].starts_with(&h.codes[i]), "{i} is a prefix of {j}");
                }
            }
            assert_eq!(h.points[i][0], counts.len() as u32 - 2, "paths start at the root");
        }
        assert!(h.codes[0].len() <= h.codes[49].len());
        // Kraft equality: a full binary tree.
        let kraft: f64 = h.codes.iter().map(|c| 0.5f64.powi(c.len() as i32)).sum();
        assert!((kraft - 1.0).abs() < 1e-12);
    }
}
