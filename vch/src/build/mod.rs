//! `docker build` with the classic builder's API and output. Each RUN, COPY and ADD
//! runs in a container VM made from the previous step's image: a "hold" container
//! (see `ContainerSpec::hold`) that runs nothing of its own while the step's command is
//! exec'd into it or its files are copied in; its changes are then committed as the
//! step's layer. Config-only instructions make config-only images. Every step's image is
//! kept (untagged, with its parent and cache key) so that the next build of the same
//! step from the same parent is a cache hit, as with dockerd.
//!
//! The steps reach containers and images through [`host::BuildHost`] (the VCH backend
//! implements it in backend/build.rs).

pub mod config;
pub mod context;
pub mod dockerfile;
mod executor;
pub mod host;
pub mod ignore;
#[cfg(test)]
mod tests;
pub mod words;

pub use executor::{build, Request};
