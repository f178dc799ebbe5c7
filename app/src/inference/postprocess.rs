//! Post-processing the manifest asks for, applied to the whole label volume: the brain is one
//! connected object, so labelled islands apart from it (eyes, neck, scalp) are background.

/// Keeps the largest 6-connected component of non-background voxels; returns how many
/// voxels were set to background. `dims` = [columns, rows, slices].
pub fn keep_largest_component(labels: &mut [u8], [c, r, s]: [usize; 3]) -> usize {
    let n = c * r * s;
    if labels.len() != n || n == 0 {
        return 0;
    }
    let mut component = vec![0u32; n];
    let mut sizes = vec![0usize]; // component 0 = background
    let mut stack = Vec::new();
    for start in 0..n {
        if labels[start] == 0 || component[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        let mut size = 0;
        component[start] = id;
        stack.push(start);
        while let Some(v) = stack.pop() {
            size += 1;
            let (x, y, z) = (v % c, (v / c) % r, v / (c * r));
            let mut visit = |u: usize| {
                if labels[u] != 0 && component[u] == 0 {
                    component[u] = id;
                    stack.push(u);
                }
            };
            if x > 0 {
                visit(v - 1);
            }
            if x + 1 < c {
                visit(v + 1);
            }
            if y > 0 {
                visit(v - c);
            }
            if y + 1 < r {
                visit(v + c);
            }
            if z > 0 {
                visit(v - c * r);
            }
            if z + 1 < s {
                visit(v + c * r);
            }
        }
        sizes.push(size);
    }
    let Some(largest) = (1..sizes.len()).max_by_key(|&i| sizes[i]) else {
        return 0;
    };
    let mut removed = 0;
    for (l, &id) in labels.iter_mut().zip(&component) {
        if id != 0 && id as usize != largest {
            *l = 0;
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn islands_apart_from_the_largest_object_are_removed() {
        // 6 × 4 × 3: a 2 × 2 × 2 cube (8 voxels, two labels) and a lone voxel far from it.
        let (c, r, s) = (6, 4, 3);
        let mut labels = vec![0u8; c * r * s];
        let at = |x: usize, y: usize, z: usize| (z * r + y) * c + x;
        for z in 0..2 {
            for y in 0..2 {
                for x in 0..2 {
                    labels[at(x, y, z)] = 1 + (x as u8 % 2);
                }
            }
        }
        labels[at(5, 3, 2)] = 3;
        // Diagonal neighbours are not 6-connected.
        labels[at(2, 2, 2)] = 2;
        let removed = keep_largest_component(&mut labels, [c, r, s]);
        assert_eq!(removed, 2);
        assert_eq!(labels.iter().filter(|&&l| l != 0).count(), 8);
        assert_eq!(labels[at(1, 1, 1)], 2);
    }
}
