//! The VCH: the translator between the Docker Engine API and vSphere.

pub mod images;
