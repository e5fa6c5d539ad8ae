//! The audit ledger's Merkle tree: RFC 6962 / RFC 9162 hashing with blake3 in place of
//! SHA-256 — a leaf is `H(0x00 ‖ data)`, an interior node `H(0x01 ‖ left ‖ right)`, and the
//! tree over `n` leaves splits at the largest power of two below `n`. Inclusion proofs (an
//! audit path) and consistency proofs (between two tree sizes) follow RFC 9162 §2.1.3–2.1.4,
//! verification algorithms included.
//!
//! [`Frontier`] keeps only the roots of the perfect subtrees along the right edge (at most 64
//! hashes), so the ledger can compute the root of a growing tree without holding its leaves.

use events::Hash;

/// The hash of a leaf's data: `blake3(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(data);
    Hash(*hasher.finalize().as_bytes())
}

/// The hash of an interior node: `blake3(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous input hashed in one call: cheaper than three small hasher updates, and
    // the verifier hashes about one node per entry.
    let mut input = [0u8; 65];
    input[0] = 0x01;
    input[1..33].copy_from_slice(&left.0);
    input[33..].copy_from_slice(&right.0);
    Hash(*blake3::hash(&input).as_bytes())
}

/// The root of the empty tree: `blake3("")`, as RFC 6962 defines MTH({}) = HASH().
pub fn empty_root() -> Hash {
    Hash(*blake3::hash(b"").as_bytes())
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves` (RFC 9162 §2.1.3.1), or `None`
/// when the index is out of range.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (index < leaves.len()).then(|| {
        let mut path = Vec::new();
        path_into(index, leaves, &mut path);
        path
    })
}

fn path_into(index: usize, leaves: &[Hash], path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path_into(index, &leaves[..k], path);
        path.push(root(&leaves[k..]));
    } else {
        path_into(index - k, &leaves[k..], path);
        path.push(root(&leaves[..k]));
    }
}

/// Checks an audit path (RFC 9162 §2.1.3.2): that `leaf` is at `index` of the tree of
/// `tree_size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &Hash,
    path: &[Hash],
    expected_root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut f, mut s) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *expected_root
}

/// The consistency proof between the tree of the first `old_size` leaves and the tree over
/// all `leaves` (RFC 9162 §2.1.4.1), or `None` unless `0 < old_size <= leaves.len()`.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (old_size > 0 && old_size <= leaves.len()).then(|| {
        let mut proof = Vec::new();
        subproof(old_size, leaves, true, &mut proof);
        proof
    })
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): the tree of `old_size` with root
/// `old_root` is a prefix of the tree of `new_size` with root `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first (one
/// per set bit of the size). Appending a leaf merges equal-sized subtrees like a binary
/// counter, so appends cost O(1) amortised and the root O(log n).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut size = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
        while size & 1 == 1 {
            let Some(left) = self.subtrees.pop() else { break };
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.subtrees.push(node);
        self.size += 1;
    }

    /// The Merkle tree hash of the leaves so far (equal to [`root`] over them).
    pub fn root(&self) -> Hash {
        let mut iter = self.subtrees.iter().rev();
        let Some(last) = iter.next() else { return empty_root() };
        iter.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The frontier as bytes: the subtree roots concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.subtrees.iter().flat_map(|h| h.0).collect()
    }

    /// The frontier of a tree of `size` leaves from [`Frontier::to_bytes`]; `None` when the
    /// bytes do not fit the size.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(32) || bytes.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let subtrees = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                Hash(h)
            })
            .collect();
        Some(Self { size, subtrees })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect()
    }

    #[test]
    fn node_hash_is_blake3_of_one_left_right() {
        let (left, right) = (Hash([1; 32]), Hash([2; 32]));
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[0x01]);
        hasher.update(&left.0);
        hasher.update(&right.0);
        assert_eq!(node_hash(&left, &right).0, *hasher.finalize().as_bytes());
    }

    #[test]
    fn frontier_root_matches_the_recursive_root() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&all[..=i]), "size {}", i + 1);
            let again = Frontier::from_bytes(frontier.size(), &frontier.to_bytes()).unwrap();
            assert_eq!(again, frontier);
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_reject_tampering() {
        for n in 1..=33 {
            let all = leaves(n);
            let r = root(&all);
            for m in 0..n {
                let path = inclusion_proof(m, &all).unwrap();
                assert!(verify_inclusion(m as u64, n as u64, &all[m], &path, &r), "{m} of {n}");
                let wrong_leaf = leaf_hash(b"forged");
                assert!(!verify_inclusion(m as u64, n as u64, &wrong_leaf, &path, &r));
                if n > 1 {
                    let mut bad = path.clone();
                    bad[0].0[0] ^= 1;
                    assert!(!verify_inclusion(m as u64, n as u64, &all[m], &bad, &r));
                }
            }
            assert!(inclusion_proof(n, &all).is_none());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_reject_forks() {
        for n in 1..=33 {
            let all = leaves(n);
            let new_root = root(&all);
            for m in 1..=n {
                let old_root = root(&all[..m]);
                let proof = consistency_proof(m, &all).unwrap();
                assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof), "{m} -> {n}");
                let forked = leaf_hash(b"fork");
                assert!(!verify_consistency(m as u64, n as u64, &forked, &new_root, &proof));
                if m < n {
                    assert!(!verify_consistency(m as u64, n as u64, &old_root, &forked, &proof));
                }
            }
        }
    }
}
