//! ETA (end-to-end target attention) building blocks that live outside burn.
//!
//! ETA retrieves, for each candidate item, the `k` behaviours of a long user sequence whose
//! SimHash codes are nearest in Hamming distance to the candidate's code, then runs ordinary
//! target attention over those `k`. No gradient flows through the hash; the embeddings keep
//! training, so retrieval follows them. This module holds the non-differentiable part:
//! [`SimHash`] (random-hyperplane codes) and [`top_k_by_hamming`] (counting selection). See
//! [`simhash`] for the algorithms and their cost.

pub mod simhash;

pub use simhash::{SimHash, TopKScratch, top_k_by_hamming, top_k_by_hamming_batch};
