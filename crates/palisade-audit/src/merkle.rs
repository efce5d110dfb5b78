//! RFC 6962 / RFC 9162 Merkle tree: hashing, proof planning, proof
//! verification, an in-memory tree and an append-only frontier.
//!
//! Everything here is pure and I/O-free so that the async stores, the
//! sequencer and the offline verifier share one implementation.
//!
//! # Storage model
//!
//! Stored hashes follow the tlog-tiles layout (<https://c2sp.org/tlog-tiles>):
//! only hashes of *complete* perfect subtrees are ever stored, addressed by
//! [`NodeId`] `(level, index)`, where level 0 holds leaf hashes and node
//! `(L, i)` covers leaves `[i * 2^L, (i + 1) * 2^L)`. A complete node never
//! changes once written, which is what makes tiles immutable.
//!
//! A proof element for a tree whose size is not a power of two can be the
//! hash of an *incomplete* right subtree. Such a hash is never stored: the
//! planning functions ([`inclusion_proof_nodes`], [`consistency_proof_nodes`],
//! [`root_nodes`]) list the complete subtrees it decomposes into, and the
//! matching `assemble_*` functions fold them back together. A store therefore
//! reads all needed hashes in one batch of `O(log n)` ids, then assembles.

use std::fmt;

use aws_lc_rs::digest;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Length in bytes of every [`Hash`]; checked on untrusted byte input.
pub const HASH_LEN: usize = 32;

/// Domain-separation prefix for leaf hashes (RFC 6962 §2.1), so a leaf can
/// never be confused with an interior node (second-preimage resistance).
const LEAF_PREFIX: u8 = 0x00;

/// Domain-separation prefix for interior node hashes (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// Bit width of tree sizes and indexes; bounds every loop over levels.
const U64_BITS: u32 = u64::BITS;

/// Hashes one leaf: `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(leaf);
    to_array(&ctx.finish())
}

/// Hashes two children into their parent: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer and a one-shot digest is cheaper than three
    // `update` calls; this function dominates tree-building time.
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = NODE_PREFIX;
    buf[1..=HASH_LEN].copy_from_slice(left);
    buf[1 + HASH_LEN..].copy_from_slice(right);
    to_array(&digest::digest(&digest::SHA256, &buf))
}

/// Root of the empty tree: `SHA-256("")` (RFC 6962 §2.1).
pub fn empty_root() -> Hash {
    to_array(&digest::digest(&digest::SHA256, &[]))
}

/// Copies a SHA-256 digest into a fixed array. The digest is always 32
/// bytes, so the copy cannot panic.
fn to_array(d: &digest::Digest) -> Hash {
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Errors from proof planning, proof generation and proof verification.
///
/// Every variant is a definite answer about the inputs; none of them means
/// "try again". Verification callers usually only need `is_err()`, but the
/// variants tell an operator *why* a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size the index was checked against.
        size: u64,
    },
    /// A requested tree size is larger than the tree that is available.
    #[error("tree size {size} exceeds the {available} leaves available")]
    SizeOutOfRange {
        /// Requested tree size.
        size: u64,
        /// Number of leaves actually available.
        available: u64,
    },
    /// A consistency request or proof whose old size exceeds its new size.
    #[error("old tree size {size1} is larger than new tree size {size2}")]
    ReversedSizes {
        /// Old (claimed smaller) tree size.
        size1: u64,
        /// New (claimed larger) tree size.
        size2: u64,
    },
    /// Consistency from the empty tree: it proves nothing, so it is refused
    /// rather than silently accepted (matches the transparency-dev vectors).
    #[error("consistency from an empty tree is not a meaningful proof")]
    EmptyOldTree,
    /// The proof does not have exactly the number of hashes the sizes require.
    #[error("proof has {got} hashes, expected {want}")]
    WrongProofLength {
        /// Number of hashes supplied.
        got: usize,
        /// Number of hashes required.
        want: usize,
    },
    /// A hash supplied as bytes is not 32 bytes long.
    #[error("{field} is {len} bytes, expected 32")]
    WrongHashLength {
        /// Which input had the wrong length ("leaf hash", "root", ...).
        field: &'static str,
        /// Its actual length.
        len: usize,
    },
    /// The root recomputed from the proof differs from the expected root.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
    /// `assemble_*` was given a different number of hashes than planned.
    #[error("got {got} node hashes, expected {want}")]
    WrongNodeCount {
        /// Number of hashes supplied.
        got: usize,
        /// Number of node ids the plan listed.
        want: usize,
    },
    /// A [`HashReader`] was asked for a node it does not hold.
    #[error("node {0} is not stored")]
    MissingNode(NodeId),
    /// Appending would exceed `u64::MAX` leaves.
    #[error("tree would exceed u64::MAX leaves")]
    TreeFull,
}

/// Address of a complete perfect subtree in the tlog-tiles layout.
///
/// Node `(level, index)` covers leaves `[index * 2^level, (index + 1) * 2^level)`;
/// level 0 nodes are leaf hashes. Levels are at most 63 for any `u64` tree size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = leaf hash).
    pub level: u8,
    /// Position among the nodes of this level, from the left.
    pub index: u64,
}

impl NodeId {
    /// Builds a node id; `level` 0 addresses leaf hashes.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(level {}, index {})", self.level, self.index)
    }
}

/// Source of stored complete-subtree hashes.
///
/// Implementations return the hashes in the order of `ids`. The proof
/// functions in this module ([`inclusion_proof`], [`consistency_proof`],
/// [`root`]) call it exactly once per request, so a store can serve the whole
/// batch with one query.
pub trait HashReader {
    /// Storage error. The generic proof functions also require
    /// `Error: From<ProofError>`, so planning errors surface through it.
    type Error;

    /// Reads the hashes of `ids`, in the same order. A missing id is an error.
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

/// Node ids needed for the inclusion proof of leaf `index` in a tree of
/// `size` leaves, in storage-read order. Feed the hashes, in the same order,
/// to [`assemble_inclusion_proof`].
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(inclusion_plan(index, size)?.nodes)
}

/// Builds the inclusion proof (RFC 9162 §2.1.3, leaf level first) from the
/// hashes of the ids returned by [`inclusion_proof_nodes`] for the same
/// `(index, size)`.
pub fn assemble_inclusion_proof(
    index: u64,
    size: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, ProofError> {
    inclusion_plan(index, size)?.assemble(hashes)
}

/// Node ids needed for the consistency proof from size `size1` to `size2`.
/// `size1 == size2 > 0` needs nothing (the proof is empty).
pub fn consistency_proof_nodes(size1: u64, size2: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(consistency_plan(size1, size2)?.nodes)
}

/// Builds the consistency proof (RFC 9162 §2.1.4) from the hashes of the ids
/// returned by [`consistency_proof_nodes`] for the same sizes.
pub fn assemble_consistency_proof(
    size1: u64,
    size2: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, ProofError> {
    consistency_plan(size1, size2)?.assemble(hashes)
}

/// Node ids whose hashes determine the root of a tree of `size` leaves: one
/// complete subtree per set bit of `size`, largest (leftmost) first.
///
/// The same ids are the tree's right edge, i.e. what [`Frontier::from_parts`]
/// needs to resume appending.
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    root_plan(size).nodes
}

/// Computes the root of a tree of `size` leaves from the hashes of
/// [`root_nodes`]`(size)`, in that order.
pub fn assemble_root(size: u64, hashes: &[Hash]) -> Result<Hash, ProofError> {
    let plan = root_plan(size);
    plan.check_count(hashes)?;
    Ok(fold_right(hashes))
}

/// Reads and assembles an inclusion proof with one batched read.
pub fn inclusion_proof<R>(reader: &R, index: u64, size: u64) -> Result<Vec<Hash>, R::Error>
where
    R: HashReader + ?Sized,
    R::Error: From<ProofError>,
{
    let plan = inclusion_plan(index, size)?;
    let hashes = reader.read_hashes(&plan.nodes)?;
    Ok(plan.assemble(&hashes)?)
}

/// Reads and assembles a consistency proof with one batched read.
pub fn consistency_proof<R>(reader: &R, size1: u64, size2: u64) -> Result<Vec<Hash>, R::Error>
where
    R: HashReader + ?Sized,
    R::Error: From<ProofError>,
{
    let plan = consistency_plan(size1, size2)?;
    let hashes = reader.read_hashes(&plan.nodes)?;
    Ok(plan.assemble(&hashes)?)
}

/// Reads the right-edge subtrees of a tree of `size` leaves and computes its root.
pub fn root<R>(reader: &R, size: u64) -> Result<Hash, R::Error>
where
    R: HashReader + ?Sized,
    R::Error: From<ProofError>,
{
    let ids = root_nodes(size);
    let hashes = reader.read_hashes(&ids)?;
    Ok(assemble_root(size, &hashes)?)
}

/// Which stored nodes a proof needs, and how they group into proof elements.
///
/// Each group is one proof element: a single complete node, or the
/// complete nodes an incomplete subtree decomposes into (folded right).
#[derive(Debug, Default)]
struct Plan {
    nodes: Vec<NodeId>,
    /// Number of consecutive `nodes` entries in each proof element.
    groups: Vec<usize>,
}

impl Plan {
    /// Adds one proof element covering leaves `[begin, begin + len)`.
    ///
    /// `begin` must be a multiple of the largest power of two in `len`, which
    /// holds for every subtree of an RFC 6962 tree. The range splits into one
    /// complete node per set bit of `len`, largest first, exactly as RFC 6962
    /// splits a non-power-of-two range at its largest power of two.
    fn push_range(&mut self, begin: u64, len: u64) {
        let before = self.nodes.len();
        let mut cur = begin;
        for level in (0..U64_BITS).rev() {
            let width = 1u64 << level;
            if len & width != 0 {
                self.nodes.push(NodeId::new(level_u8(level), cur >> level));
                // Cannot overflow: cur ends at begin + len, a valid leaf count.
                cur += width;
            }
        }
        self.groups.push(self.nodes.len() - before);
    }

    /// Adds the sibling at `level` of the node with index `index` there,
    /// clipped to `size` leaves when it is an incomplete right subtree.
    fn push_sibling(&mut self, level: u32, index: u64, size: u64) {
        let sibling = index ^ 1;
        // Every sibling on a path starts below `size`, so no overflow.
        let begin = sibling << level;
        let len = (1u64 << level).min(size - begin);
        self.push_range(begin, len);
    }

    /// Adds the audit path of complete node `(level, index)` inside a tree of
    /// `size` leaves, from the bottom up (RFC 9162 PATH, generalised to start
    /// at any level so consistency proofs can reuse it).
    fn push_path(&mut self, level: u32, index: u64, size: u64) {
        // Index, at `level`, of the node holding the last leaf.
        let last = (size - 1) >> level;
        // Below `inner`, the path and the last leaf are in different
        // subtrees, so every level has a sibling (the top one possibly
        // incomplete). From `inner` up, the path runs along the right edge
        // and only has left siblings, where the index bit is 1.
        let inner = bit_len(index ^ last);
        for l in 0..inner {
            self.push_sibling(level + l, index >> l, size);
        }
        for l in inner..(U64_BITS - level) {
            if (index >> l) & 1 == 1 {
                self.push_sibling(level + l, index >> l, size);
            }
        }
    }

    /// Fails unless `hashes` has exactly one entry per planned node.
    fn check_count(&self, hashes: &[Hash]) -> Result<(), ProofError> {
        if hashes.len() == self.nodes.len() {
            Ok(())
        } else {
            Err(ProofError::WrongNodeCount {
                got: hashes.len(),
                want: self.nodes.len(),
            })
        }
    }

    /// Folds each group of node hashes into one proof element.
    fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, ProofError> {
        self.check_count(hashes)?;
        let mut proof = Vec::with_capacity(self.groups.len());
        let mut rest = hashes;
        for &count in &self.groups {
            let (group, tail) = rest.split_at(count);
            proof.push(fold_right(group));
            rest = tail;
        }
        Ok(proof)
    }
}

/// Plan for the inclusion proof of leaf `index` in a tree of `size` leaves.
fn inclusion_plan(index: u64, size: u64) -> Result<Plan, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut plan = Plan::default();
    plan.push_path(0, index, size);
    Ok(plan)
}

/// Plan for the consistency proof from `size1` to `size2` (RFC 9162
/// SUBPROOF, in the iterative form used by transparency-dev/merkle).
fn consistency_plan(size1: u64, size2: u64) -> Result<Plan, ProofError> {
    if size1 > size2 {
        return Err(ProofError::ReversedSizes { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let mut plan = Plan::default();
    if size1 == size2 {
        return Ok(plan);
    }
    // The largest complete subtree ending at leaf size1 - 1: the old tree's
    // right edge, shared with the new tree.
    let level = size1.trailing_zeros();
    let index = (size1 - 1) >> level;
    // When size1 is a power of two that subtree *is* the old root, which
    // the verifier already has, so RFC 9162 omits it.
    if index != 0 {
        plan.push_range(index << level, 1u64 << level);
    }
    plan.push_path(level, index, size2);
    Ok(plan)
}

/// Plan for the root of a tree of `size` leaves (a single group).
fn root_plan(size: u64) -> Plan {
    let mut plan = Plan::default();
    plan.push_range(0, size);
    plan
}

/// Merkle tree hash of consecutive complete subtrees, largest first: each
/// subtree is the left child of the hash of everything to its right.
/// An empty slice is the empty tree.
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |right, left| node_hash(left, &right))
}

/// Number of significant bits in `x` (0 for 0), as in Go's `bits.Len64`.
fn bit_len(x: u64) -> u32 {
    U64_BITS - x.leading_zeros()
}

/// Narrows a bit position (always < 64) to a [`NodeId`] level.
fn level_u8(level: u32) -> u8 {
    // Levels come from bit positions of a u64, so they are at most 63.
    u8::try_from(level).unwrap_or(u8::MAX)
}

// ---------------------------------------------------------------------------
// Verification (mirrors transparency-dev/merkle proof/verify.go)
// ---------------------------------------------------------------------------

/// Verifies that `leaf_hash` is leaf `leaf_index` of the tree of `tree_size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
///
/// All inputs are untrusted bytes: wrong lengths, wrong sizes and extra or
/// missing proof elements are errors, never panics.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &[u8],
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    let root = to_hash(root, "root")?;
    let computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)?;
    check_match(&computed, &root)
}

/// Recomputes the root implied by an inclusion proof, without comparing it
/// to anything. Useful when the root comes from a checkpoint verified later.
pub fn root_from_inclusion_proof<P: AsRef<[u8]>>(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &[u8],
    proof: &[P],
) -> Result<Hash, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    let leaf = to_hash(leaf_hash, "leaf hash")?;
    let (inner, border) = decompose_inclusion(leaf_index, tree_size);
    check_proof_len(proof.len(), inner + border)?;
    let proof = to_hashes(proof)?;
    let (inner_part, border_part) = proof.split_at(inner);
    let hash = chain_inner(leaf, inner_part, leaf_index);
    Ok(chain_border_right(hash, border_part))
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
///
/// Rules (as encoded by the transparency-dev vectors): `size2 < size1`
/// fails; `size1 == 0` always fails; `size1 == size2` passes only with an
/// empty proof and byte-equal roots; otherwise the proof has an exact length
/// and every hash must be 32 bytes.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::ReversedSizes { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if size1 == size2 {
        check_proof_len(proof.len(), 0)?;
        // Same tree: consistent iff the roots are the same bytes. Like Go,
        // compare without a length check (a vector requires this), since no
        // hash is computed from them; equal roots prove nothing either way.
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let root1 = to_hash(root1, "old root")?;
    let root2 = to_hash(root2, "new root")?;

    // The proof is (optionally) the hash of the largest complete subtree
    // ending at size1, then that subtree's audit path in the new tree.
    let (inner, border) = decompose_inclusion(size1 - 1, size2);
    let shift = size1.trailing_zeros();
    // shift < inner whenever size1 < size2; saturate rather than trust it.
    let inner = inner.saturating_sub(shift as usize);
    let seed_in_proof = !size1.is_power_of_two();
    check_proof_len(proof.len(), usize::from(seed_in_proof) + inner + border)?;
    let proof = to_hashes(proof)?;
    let (seed, path) = match proof.split_first() {
        Some((first, rest)) if seed_in_proof => (*first, rest),
        // size1 is a power of two: the subtree is the old root itself.
        _ => (root1, proof.as_slice()),
    };
    let (inner_part, border_part) = path.split_at(inner);
    let mask = (size1 - 1) >> shift;

    // Old root: only the left siblings contribute.
    let hash1 = chain_border_right(chain_inner_right(seed, inner_part, mask), border_part);
    check_match(&hash1, &root1)?;
    // New root: every sibling contributes.
    let hash2 = chain_border_right(chain_inner(seed, inner_part, mask), border_part);
    check_match(&hash2, &root2)
}

/// Splits the proof for `(index, size)` into the number of levels where the
/// path has siblings on both sides (`inner`) and the number of left-only
/// siblings above them (`border`). Requires `index < size`.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner as usize, border as usize)
}

/// Hashes up through the inner levels, choosing the side by the index bit.
fn chain_inner(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |acc, (i, sibling)| {
        if (index >> i) & 1 == 0 {
            node_hash(&acc, sibling)
        } else {
            node_hash(sibling, &acc)
        }
    })
}

/// Like [`chain_inner`] but skips right siblings, which the old tree of a
/// consistency proof does not contain.
fn chain_inner_right(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |acc, (i, sibling)| {
        if (index >> i) & 1 == 1 {
            node_hash(sibling, &acc)
        } else {
            acc
        }
    })
}

/// Hashes up along the right border, where every sibling is on the left.
fn chain_border_right(seed: Hash, proof: &[Hash]) -> Hash {
    proof
        .iter()
        .fold(seed, |acc, sibling| node_hash(sibling, &acc))
}

/// Converts untrusted bytes to a [`Hash`], naming the field on failure.
fn to_hash(bytes: &[u8], field: &'static str) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::WrongHashLength {
        field,
        len: bytes.len(),
    })
}

/// Converts every proof element, failing on the first wrong length.
fn to_hashes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .map(|p| to_hash(p.as_ref(), "proof hash"))
        .collect()
}

/// Fails unless the proof has exactly `want` elements.
fn check_proof_len(got: usize, want: usize) -> Result<(), ProofError> {
    if got == want {
        Ok(())
    } else {
        Err(ProofError::WrongProofLength { got, want })
    }
}

/// Compares two roots. Roots are public, so a plain comparison is fine.
fn check_match(computed: &Hash, expected: &Hash) -> Result<(), ProofError> {
    if computed == expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

// ---------------------------------------------------------------------------
// In-memory tree
// ---------------------------------------------------------------------------

/// A whole Merkle tree in memory, stored as complete-subtree hashes per level
/// (the same layout as the persistent store).
///
/// Used by tests, the offline verifier and benchmarks. Appending computes
/// only the nodes that the new leaf completes (amortised O(1) hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of complete node `(l, i)`; level 0 holds
    /// the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// Creates an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a tree from leaf hashes, in order.
    pub fn from_leaf_hashes(leaf_hashes: &[Hash]) -> Self {
        let mut tree = Self::new();
        tree.extend(leaf_hashes);
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends one leaf hash and the complete nodes it finishes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            // An even count means the new node completed its parent.
            let n = row.len();
            if !n.is_multiple_of(2) {
                return;
            }
            hash = node_hash(&row[n - 2], &row[n - 1]);
            level += 1;
        }
    }

    /// Appends a batch of leaf hashes, in order.
    pub fn extend(&mut self, leaf_hashes: &[Hash]) {
        for hash in leaf_hashes {
            self.push(*hash);
        }
    }

    /// Hash of a complete node, if the tree holds it.
    pub fn node(&self, id: NodeId) -> Option<Hash> {
        let row = self.levels.get(usize::from(id.level))?;
        row.get(usize::try_from(id.index).ok()?).copied()
    }

    /// Root of the tree over the first `size` leaves (any earlier version).
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        root(self, size)
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        inclusion_proof(self, index, size)
    }

    /// Consistency proof between the trees of the first `size1` and `size2` leaves.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size2)?;
        consistency_proof(self, size1, size2)
    }

    /// The frontier of the tree of the first `size` leaves, to keep appending
    /// from there (for example after a restart).
    pub fn frontier(&self, size: u64) -> Result<Frontier, ProofError> {
        self.check_size(size)?;
        let hashes = self.read_hashes(&root_nodes(size))?;
        Frontier::from_parts(size, hashes)
    }

    /// Fails if `size` is larger than the tree.
    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.size();
        if size > available {
            return Err(ProofError::SizeOutOfRange { size, available });
        }
        Ok(())
    }
}

impl HashReader for MemoryTree {
    type Error = ProofError;

    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ProofError> {
        ids.iter()
            .map(|&id| self.node(id).ok_or(ProofError::MissingNode(id)))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Frontier (compact range over [0, size))
// ---------------------------------------------------------------------------

/// The right edge of a tree: the hashes of [`root_nodes`]`(size)`.
///
/// That is all the state needed to append leaves and compute the new root,
/// so the sequencer can extend the stored tree batch by batch without
/// reading it back. Each append returns the newly completed nodes to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Hashes of `root_nodes(size)`, largest subtree first.
    hashes: Vec<Hash>,
}

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// Resumes from stored state: `hashes` are the hashes of
    /// [`root_nodes`]`(size)`, in that order.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let want = size.count_ones() as usize;
        if hashes.len() != want {
            return Err(ProofError::WrongNodeCount {
                got: hashes.len(),
                want,
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Right-edge hashes, in the order of [`root_nodes`]`(self.size())`.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Root of the tree covered so far (O(log n) hashes).
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }

    /// Appends leaf hashes and returns every complete node they create
    /// (including the leaf hashes themselves at level 0), in creation order,
    /// ready to persist. Call [`Frontier::root`] for the new root.
    ///
    /// All-or-nothing: if the tree would overflow `u64::MAX` leaves, nothing
    /// is appended.
    pub fn append(&mut self, leaf_hashes: &[Hash]) -> Result<Vec<(NodeId, Hash)>, ProofError> {
        let count = u64::try_from(leaf_hashes.len()).map_err(|_| ProofError::TreeFull)?;
        self.size.checked_add(count).ok_or(ProofError::TreeFull)?;
        // Each leaf adds itself plus one node per trailing 1-bit of the old
        // size; two per leaf is the amortised bound.
        let mut created = Vec::with_capacity(leaf_hashes.len().saturating_mul(2));
        for hash in leaf_hashes {
            self.push(*hash, &mut created);
        }
        Ok(created)
    }

    /// Appends one leaf; the caller has checked that `size + 1` fits.
    fn push(&mut self, leaf_hash: Hash, created: &mut Vec<(NodeId, Hash)>) {
        let index = self.size;
        created.push((NodeId::new(0, index), leaf_hash));
        let mut hash = leaf_hash;
        // Each trailing 1-bit of the old size is a complete subtree of the
        // same height as the one being carried, so they merge (binary add).
        for level in 1..=index.trailing_ones() {
            let Some(left) = self.hashes.pop() else {
                break; // unreachable: one stored hash per set bit
            };
            hash = node_hash(&left, &hash);
            created.push((NodeId::new(level_u8(level), index >> level), hash));
        }
        self.hashes.push(hash);
        self.size += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive RFC 6962 MTH over leaf hashes, used as the reference.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// Largest power of two strictly below `n` (n >= 2).
    fn split_point(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn hash_primitives_match_rfc6962() {
        // Known SHA-256("") and the transparency-dev leaf hash of "".
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut buf = vec![1u8];
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        assert_eq!(
            node_hash(&a, &b),
            to_array(&digest::digest(&digest::SHA256, &buf))
        );
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn root_nodes_are_one_per_set_bit() {
        assert!(root_nodes(0).is_empty());
        assert_eq!(root_nodes(1), vec![NodeId::new(0, 0)]);
        assert_eq!(
            root_nodes(13),
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        assert_eq!(root_nodes(u64::MAX).len(), 64);
    }

    #[test]
    fn memory_tree_roots_match_naive() {
        let all = leaves(70);
        let tree = MemoryTree::from_leaf_hashes(&all);
        for n in 0..=70u64 {
            assert_eq!(tree.root(n), Ok(mth(&all[..n as usize])), "size {n}");
        }
        assert!(matches!(
            tree.root(71),
            Err(ProofError::SizeOutOfRange { size: 71, .. })
        ));
    }

    #[test]
    fn inclusion_plan_uses_complete_nodes_for_ephemeral_sibling() {
        // Leaf 0 of 7: siblings (0,1), (1,1), then leaves [4,7) = (1,2)+(0,6).
        let ids = inclusion_proof_nodes(0, 7).unwrap();
        assert_eq!(
            ids,
            vec![
                NodeId::new(0, 1),
                NodeId::new(1, 1),
                NodeId::new(1, 2),
                NodeId::new(0, 6)
            ]
        );
        let all = leaves(7);
        let tree = MemoryTree::from_leaf_hashes(&all);
        let proof = tree.inclusion_proof(0, 7).unwrap();
        assert_eq!(proof.len(), 3);
        assert_eq!(proof[2], mth(&all[4..7]));
    }

    #[test]
    fn planning_rejects_bad_ranges() {
        assert_eq!(
            inclusion_proof_nodes(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            consistency_proof_nodes(6, 5),
            Err(ProofError::ReversedSizes { size1: 6, size2: 5 })
        );
        assert_eq!(consistency_proof_nodes(0, 5), Err(ProofError::EmptyOldTree));
        assert_eq!(consistency_proof_nodes(5, 5), Ok(vec![]));
        assert_eq!(
            assemble_inclusion_proof(0, 2, &[]),
            Err(ProofError::WrongNodeCount { got: 0, want: 1 })
        );
        assert!(assemble_root(3, &[[0; 32]]).is_err());
    }

    #[test]
    fn planning_at_u64_extremes_does_not_panic() {
        let max = u64::MAX;
        for (i, n) in [(0, max), (max - 1, max), (max / 2, max), (1 << 63, max)] {
            let ids = inclusion_proof_nodes(i, n).unwrap();
            assert!(ids.len() <= 2 * 64);
            assert!(ids.iter().all(|id| id.level < 64));
        }
        for (m, n) in [(1, max), (max - 1, max), (1 << 63, max), (3, max)] {
            assert!(!consistency_proof_nodes(m, n).unwrap().is_empty());
        }
        // Verifiers must reject, not panic or overflow.
        let h = [0u8; 32];
        assert!(verify_inclusion(max - 1, max, &h, &[h; 3], &h).is_err());
        assert!(verify_inclusion(max, max, &h, &[h; 3], &h).is_err());
        assert!(verify_consistency(1, max, &[h; 3], &h, &h).is_err());
        assert!(verify_consistency(max, max, &[h; 0], &h, &h).is_ok());
        assert!(verify_consistency(max - 1, max, &[h; 70], &h, &h).is_err());
    }

    #[test]
    fn proofs_verify_and_tampering_fails() {
        let all = leaves(21);
        let tree = MemoryTree::from_leaf_hashes(&all);
        for n in 1..=21u64 {
            let root = tree.root(n).unwrap();
            for i in 0..n {
                let proof = tree.inclusion_proof(i, n).unwrap();
                let leaf = all[i as usize];
                assert_eq!(verify_inclusion(i, n, &leaf, &proof, &root), Ok(()));
                assert!(
                    verify_inclusion(i, n, &all[(i as usize + 1) % 21], &proof, &root).is_err()
                );
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert_ne!(&bad[0], first);
                    assert!(verify_inclusion(i, n, &leaf, &bad, &root).is_err());
                }
            }
            for m in 1..=n {
                let proof = tree.consistency_proof(m, n).unwrap();
                let old = tree.root(m).unwrap();
                assert_eq!(verify_consistency(m, n, &proof, &old, &root), Ok(()));
                if m < n {
                    let mut bad = proof.clone();
                    let last = bad.len() - 1;
                    bad[last][31] ^= 0x80;
                    assert!(verify_consistency(m, n, &bad, &old, &root).is_err());
                }
                // Each root is checked on its own, for every shape of m.
                let mut bad_old = old;
                bad_old[0] ^= 1;
                let mut bad_new = root;
                bad_new[0] ^= 1;
                assert_eq!(
                    verify_consistency(m, n, &proof, &bad_old, &root),
                    Err(ProofError::RootMismatch),
                    "old root {m} -> {n}"
                );
                assert_eq!(
                    verify_consistency(m, n, &proof, &old, &bad_new),
                    Err(ProofError::RootMismatch),
                    "new root {m} -> {n}"
                );
            }
        }
    }

    #[test]
    fn verification_rejects_wrong_lengths() {
        let tree = MemoryTree::from_leaf_hashes(&leaves(4));
        let root = tree.root(4).unwrap();
        let proof = tree.inclusion_proof(1, 4).unwrap();
        let leaf = leaves(4)[1];
        assert!(matches!(
            verify_inclusion(1, 4, &leaf[..31], &proof, &root),
            Err(ProofError::WrongHashLength { len: 31, .. })
        ));
        assert!(matches!(
            verify_inclusion(1, 4, &leaf, &proof, &[]),
            Err(ProofError::WrongHashLength { len: 0, .. })
        ));
        let short: Vec<Vec<u8>> = vec![proof[0].to_vec(), proof[1][..5].to_vec()];
        assert!(matches!(
            verify_inclusion(1, 4, &leaf, &short, &root),
            Err(ProofError::WrongHashLength { len: 5, .. })
        ));
        assert!(matches!(
            verify_inclusion(1, 4, &leaf, &proof[..1], &root),
            Err(ProofError::WrongProofLength { got: 1, want: 2 })
        ));
    }

    #[test]
    fn frontier_matches_memory_tree() {
        let all = leaves(100);
        let tree = MemoryTree::from_leaf_hashes(&all);
        let mut frontier = Frontier::new();
        let mut created = Vec::new();
        for chunk in all.chunks(7) {
            created.extend(frontier.append(chunk).unwrap());
            assert_eq!(Ok(frontier.root()), tree.root(frontier.size()));
        }
        assert_eq!(frontier.size(), 100);
        for (id, hash) in &created {
            assert_eq!(tree.node(*id), Some(*hash), "node {id}");
        }
        // Exactly one node per stored node: 100 + 50 + 25 + 12 + 6 + 3 + 1.
        assert_eq!(created.len(), 197);
        assert_eq!(tree.frontier(100).unwrap(), frontier);
    }

    #[test]
    fn frontier_rejects_bad_state_and_overflow() {
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
        let mut full = Frontier::from_parts(u64::MAX, vec![[0; 32]; 64]).unwrap();
        assert_eq!(full.append(&[[1; 32]]), Err(ProofError::TreeFull));
        assert_eq!(full.size(), u64::MAX);
        assert_eq!(full.append(&[]), Ok(vec![]));
        assert_eq!(Frontier::new().root(), empty_root());
    }

    #[test]
    fn reader_errors_propagate() {
        let tree = MemoryTree::from_leaf_hashes(&leaves(3));
        // Asking the generic function directly skips MemoryTree's size check.
        assert_eq!(
            inclusion_proof(&tree, 0, 4),
            Err(ProofError::MissingNode(NodeId::new(1, 1)))
        );
    }
}
