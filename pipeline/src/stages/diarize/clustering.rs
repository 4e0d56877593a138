//! Speaker embeddings grouped into speakers: agglomerative clustering with
//! average linkage on cosine distance, cut at a distance threshold or at a
//! number of clusters; clusters too light to be a speaker (stray
//! embeddings of little audio) are dissolved, then every embedding is assigned to its
//! nearest remaining cluster centroid.
//!
//! Linkage runs on at most [`MAX_LINKED`] embeddings (evenly spaced when
//! there are more), so time and memory stay bounded whatever the
//! recording's length; the rest join their nearest centroid.

/// How many clusters to make.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClusterCount {
    /// Merge while the closest clusters are at most this cosine distance apart.
    pub threshold: f32,
    /// Exactly this many clusters (when there are that many embeddings).
    pub exactly: Option<usize>,
    pub at_least: Option<usize>,
    pub at_most: Option<usize>,
    /// Clusters whose embeddings weigh less in all are not speakers and
    /// join their nearest speaker (unless a speaker count needs them).
    pub min_weight: f32,
}

/// The most embeddings the linkage itself sees.
pub const MAX_LINKED: usize = 2000;

/// The cluster of each of `embeddings` (rows of `dims` floats, any norm),
/// numbered from 0 in order of first appearance. `weights` says how much
/// each embedding counts towards its cluster being a speaker (the seconds
/// of audio it was made from).
pub fn cluster(
    embeddings: &[f32],
    weights: &[f32],
    dims: usize,
    count: &ClusterCount,
) -> Vec<usize> {
    let rows: Vec<Vec<f32>> = embeddings.chunks(dims).map(normalized).collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let stride = rows.len().div_ceil(MAX_LINKED);
    let linked: Vec<&[f32]> = rows.iter().step_by(stride).map(Vec::as_slice).collect();
    // A linked row stands for the `stride` rows it was picked among.
    let weights: Vec<f32> = weights
        .iter()
        .step_by(stride)
        .map(|w| w * stride as f32)
        .collect();
    let dendrogram = Dendrogram {
        merges: average_linkage(&linked),
        weights,
        min_weight: count.min_weight,
    };
    let (labels, speakers) = dendrogram.speakers(count);
    let mut centroids = centroids(&linked, &labels);
    centroids.truncate(speakers);
    let nearest: Vec<usize> = rows.iter().map(|r| nearest(&centroids, r)).collect();
    renumbered(&nearest)
}

/// The merges of the linked rows, their weights, and the weight a cluster
/// needs to count as a speaker.
struct Dendrogram {
    merges: Vec<Merge>,
    weights: Vec<f32>,
    min_weight: f32,
}

impl Dendrogram {
    /// The rows' labels at `clusters` clusters, the heaviest cluster 0
    /// (ties: first seen), and how many clusters weigh enough for a speaker.
    fn at(&self, clusters: usize) -> (Vec<usize>, usize) {
        let labels = cut(&self.merges, self.weights.len(), clusters);
        let mut sizes = vec![0.0f32; clusters];
        for (&l, w) in labels.iter().zip(&self.weights) {
            sizes[l] += w;
        }
        let mut order: Vec<usize> = (0..clusters).collect();
        order.sort_by(|&a, &b| sizes[b].total_cmp(&sizes[a]));
        let mut rank = vec![0; clusters];
        for (r, &l) in order.iter().enumerate() {
            rank[l] = r;
        }
        let large = sizes.iter().filter(|&&s| s >= self.min_weight).count();
        (labels.iter().map(|&l| rank[l]).collect(), large)
    }

    /// The labels and the number of speakers (the first clusters) that
    /// `count` asks for: the heavy clusters of the threshold's cut, the cut
    /// made finer or coarser until their number meets a speaker count.
    /// Counting heavy clusters only, as a cut at a given number of clusters
    /// would let a group of stray embeddings take the place of a speaker.
    fn speakers(&self, count: &ClusterCount) -> (Vec<usize>, usize) {
        let n = self.weights.len();
        let by_threshold = n - self
            .merges
            .iter()
            .take_while(|m| m.distance <= count.threshold)
            .count();
        let (at_least, at_most) = match count.exactly {
            Some(k) => (k, k),
            None => (
                count.at_least.unwrap_or(1),
                count.at_most.unwrap_or(usize::MAX),
            ),
        };
        let mut clusters = by_threshold.clamp(1, n);
        let (mut labels, mut large) = self.at(clusters);
        while large < at_least && clusters < n {
            clusters += 1;
            (labels, large) = self.at(clusters);
        }
        while large > at_most && clusters > 1 {
            clusters -= 1;
            (labels, large) = self.at(clusters);
        }
        let speakers = large.clamp(at_least.min(clusters), at_most).max(1);
        tracing::debug!(
            embeddings = n,
            by_threshold,
            clusters,
            speakers,
            min_weight = self.min_weight,
            "clustered speaker embeddings"
        );
        (labels, speakers)
    }
}

/// Cluster centroids (normalized means) of `rows` labelled `labels`.
pub fn centroids(rows: &[&[f32]], labels: &[usize]) -> Vec<Vec<f32>> {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let dims = rows.first().map_or(0, |r| r.len());
    let mut sums = vec![vec![0.0f32; dims]; k];
    for (row, &label) in rows.iter().zip(labels) {
        for (s, x) in sums[label].iter_mut().zip(row.iter()) {
            *s += x;
        }
    }
    sums.iter().map(|s| normalized(s)).collect()
}

/// Index of the centroid most similar to `row`.
fn nearest(centroids: &[Vec<f32>], row: &[f32]) -> usize {
    centroids
        .iter()
        .enumerate()
        .max_by(|a, b| dot(a.1, row).total_cmp(&dot(b.1, row)))
        .map_or(0, |(i, _)| i)
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// Labels renumbered from 0 by first appearance.
fn renumbered(labels: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::new();
    labels
        .iter()
        .map(|l| match order.iter().position(|o| o == l) {
            Some(i) => i,
            None => {
                order.push(*l);
                order.len() - 1
            }
        })
        .collect()
}

/// One merge of the dendrogram: the clusters holding rows `a` and `b`
/// joined at `distance`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Merge {
    a: usize,
    b: usize,
    distance: f32,
}

/// Average-linkage merges of `rows`, closest first, by the
/// nearest-neighbour chain (average linkage is reducible, so the chain's
/// merges sorted by distance are the greedy algorithm's): O(n²) time, one
/// condensed distance matrix of memory.
fn average_linkage(rows: &[&[f32]]) -> Vec<Merge> {
    let n = rows.len();
    let index = |i: usize, j: usize| {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        i * n - i * (i + 1) / 2 + (j - i - 1)
    };
    let mut distance = vec![0.0f32; n * n.saturating_sub(1) / 2];
    for i in 0..n {
        for j in i + 1..n {
            distance[index(i, j)] = 1.0 - dot(rows[i], rows[j]);
        }
    }
    let mut size = vec![1usize; n];
    let mut alive = vec![true; n];
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    let mut chain: Vec<usize> = Vec::new();
    while merges.len() + 1 < n {
        if chain.is_empty() {
            chain.push(alive.iter().position(|&a| a).expect("two clusters left"));
        }
        let top = *chain.last().expect("non-empty chain");
        let previous = chain.len().checked_sub(2).map(|i| chain[i]);
        // The nearest living cluster, preferring the chain's previous one on
        // ties so that the chain ends.
        let mut best = previous.unwrap_or(usize::MAX);
        let mut best_d = previous.map_or(f32::INFINITY, |p| distance[index(top, p)]);
        for (k, _) in alive.iter().enumerate().filter(|(k, &a)| a && *k != top) {
            let d = distance[index(top, k)];
            if d < best_d {
                best = k;
                best_d = d;
            }
        }
        if Some(best) != previous {
            chain.push(best);
            continue;
        }
        chain.truncate(chain.len() - 2);
        let (a, b) = (top.min(best), top.max(best));
        merges.push(Merge {
            a,
            b,
            distance: best_d,
        });
        for k in (0..n).filter(|&k| alive[k] && k != a && k != b) {
            let joined = (size[a] as f32 * distance[index(a, k)]
                + size[b] as f32 * distance[index(b, k)])
                / (size[a] + size[b]) as f32;
            distance[index(a, k)] = joined;
        }
        size[a] += size[b];
        alive[b] = false;
    }
    merges.sort_by(|x, y| x.distance.total_cmp(&y.distance));
    merges
}

/// Labels of `n` rows after the first `n - clusters` merges.
fn cut(merges: &[Merge], n: usize, clusters: usize) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for m in &merges[..n - clusters] {
        let (a, b) = (root(&mut parent, m.a), root(&mut parent, m.b));
        parent[b] = a;
    }
    let roots: Vec<usize> = (0..n).map(|i| root(&mut parent, i)).collect();
    renumbered(&roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy average linkage straight from the definition: merge the two
    /// clusters with the smallest mean pairwise distance, until `k` remain.
    fn naive(rows: &[Vec<f32>], k: usize) -> Vec<usize> {
        let mut clusters: Vec<Vec<usize>> = (0..rows.len()).map(|i| vec![i]).collect();
        let mean = |a: &[usize], b: &[usize]| {
            let mut sum = 0.0f64;
            for &i in a {
                for &j in b {
                    sum += 1.0 - dot(&rows[i], &rows[j]) as f64;
                }
            }
            sum / (a.len() * b.len()) as f64
        };
        while clusters.len() > k {
            let mut best = (0, 1, f64::INFINITY);
            for i in 0..clusters.len() {
                for j in i + 1..clusters.len() {
                    let d = mean(&clusters[i], &clusters[j]);
                    if d < best.2 {
                        best = (i, j, d);
                    }
                }
            }
            let b = clusters.remove(best.1);
            clusters[best.0].extend(b);
        }
        let mut labels = vec![0; rows.len()];
        for (c, members) in clusters.iter().enumerate() {
            for &i in members {
                labels[i] = c;
            }
        }
        renumbered(&labels)
    }

    fn ones(flat: &[f32]) -> Vec<f32> {
        vec![1.0; flat.len() / 6]
    }

    fn random_rows(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        (0..n)
            .map(|_| normalized(&(0..dims).map(|_| next()).collect::<Vec<_>>()))
            .collect()
    }

    #[test]
    fn the_chain_makes_the_same_clusters_as_greedy_average_linkage() {
        for seed in 1..6 {
            let rows = random_rows(40, 8, seed);
            let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
            let merges = average_linkage(&refs);
            for k in [1, 2, 3, 5, 9, 40] {
                assert_eq!(
                    cut(&merges, rows.len(), k),
                    naive(&rows, k),
                    "seed {seed} k {k}"
                );
            }
        }
    }

    fn blobs() -> (Vec<f32>, Vec<usize>) {
        // Three speakers: noisy copies of three orthogonal directions.
        let noise = random_rows(30, 6, 7);
        let mut flat = Vec::new();
        let mut truth = Vec::new();
        for (i, n) in noise.iter().enumerate() {
            let speaker = [0, 1, 2, 1, 0][i % 5];
            let row: Vec<f32> = (0..6)
                .map(|d| if d == speaker { 1.0 } else { 0.0 } + 0.2 * n[d])
                .collect();
            flat.extend(row);
            truth.push(speaker);
        }
        (flat, renumbered(&truth))
    }

    #[test]
    fn a_threshold_finds_the_speakers_and_counts_override_it() {
        let (flat, truth) = blobs();
        let count = |threshold, exactly, at_least, at_most| ClusterCount {
            threshold,
            exactly,
            at_least,
            at_most,
            min_weight: 0.0,
        };
        assert_eq!(
            cluster(&flat, &ones(&flat), 6, &count(0.5, None, None, None)),
            truth
        );
        let two = cluster(&flat, &ones(&flat), 6, &count(0.5, Some(2), None, None));
        assert_eq!(two.iter().max(), Some(&1));
        let at_most = cluster(&flat, &ones(&flat), 6, &count(0.5, None, None, Some(2)));
        assert_eq!(at_most, two);
        let four = cluster(&flat, &ones(&flat), 6, &count(0.5, None, Some(4), None));
        assert_eq!(four.iter().max(), Some(&3));
        assert!(cluster(&[], &[], 6, &count(0.5, None, None, None)).is_empty());
    }

    #[test]
    fn clusters_too_small_for_a_speaker_join_their_nearest_neighbour() {
        let (mut flat, mut truth) = blobs();
        // Two strays, each nearest to speaker 0's direction.
        flat.extend([0.6, 0.0, 0.0, 0.0, 0.8, 0.0, 0.6, 0.0, 0.0, 0.0, 0.0, 0.8]);
        truth.extend([0, 0]);
        let mut count = ClusterCount {
            threshold: 0.3,
            exactly: None,
            at_least: None,
            at_most: None,
            min_weight: 0.0,
        };
        let strays_apart = cluster(&flat, &ones(&flat), 6, &count);
        assert_eq!(strays_apart.iter().max(), Some(&4), "{strays_apart:?}");
        count.min_weight = 3.0;
        assert_eq!(cluster(&flat, &ones(&flat), 6, &count), truth);
        // Three speakers asked for: the three large clusters, not a stray.
        count.exactly = Some(3);
        assert_eq!(cluster(&flat, &ones(&flat), 6, &count), truth);
        count.exactly = None;
        // Unless the count asks for them.
        count.at_least = Some(4);
        assert_eq!(
            cluster(&flat, &ones(&flat), 6, &count).iter().max(),
            Some(&3)
        );
    }

    #[test]
    fn long_inputs_link_a_bounded_subset_and_assign_the_rest() {
        let (flat, truth) = blobs();
        let reps = MAX_LINKED / 30 + 3;
        let many: Vec<f32> = (0..reps).flat_map(|_| flat.iter().copied()).collect();
        let labels = cluster(
            &many,
            &ones(&many),
            6,
            &ClusterCount {
                threshold: 0.5,
                exactly: None,
                at_least: None,
                at_most: None,
                min_weight: 0.0,
            },
        );
        let expected: Vec<usize> = (0..reps).flat_map(|_| truth.iter().copied()).collect();
        assert_eq!(labels, expected);
    }
}
