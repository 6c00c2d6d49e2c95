//! chains' integration tests, in one binary: signature and derivation vectors from the chains' own libraries, PSBTs,
//! hostile input, and the layering rule.

mod challenge;
mod layering;
mod psbt;
mod robustness;
mod vectors;
