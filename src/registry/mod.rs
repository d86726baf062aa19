//! A small OCI distribution (registry v2) client and the image copy built on it: manifests byte for byte
//! (so digests never change), blobs checked with HEAD, mounted across repositories of one registry, else
//! streamed from the source into a chunked upload (never a whole layer in memory), several at once.
//!
//! Layout: `manifest` (the manifest model, media types, digests), `error` (the errors of registry
//! traffic and of archives, shared by the others), `http` (the wire rules: bounded reads, error
//! bodies, origins and redirects, digest checks), `gzip` (compressing `docker save` layers), `client`
//! (one registry over HTTP: auth, requests, blob and manifest I/O), `copy` (the copy engine: blobs in
//! parallel, index children first, tags last, read back), [`archive`] (an OCI layout or `docker save`
//! tarball as a source), [`artifact`] (the frontend build and the verification marker as OCI
//! artifacts), `objects` (small blobs in and out, tag lists across pages), `push` (an artifact built in
//! memory pushed under a tag; one artifact layer read whole).
//!
//! APIs: the OCI distribution spec over HTTPS (`/v2/<repo>/manifests/<ref>`, `/v2/<repo>/blobs/<digest>`,
//! `/v2/<repo>/blobs/uploads/`, `/v2/<repo>/tags/list`), authenticated with the basic token of ECR
//! `GetAuthorizationToken` (fetched by the caller). No AWS API is called here.

pub mod archive;
pub mod artifact;
mod client;
mod copy;
mod error;
mod gzip;
mod http;
mod manifest;
mod objects;
mod push;

pub use client::{Options, Registry};
pub use copy::{copy_image, CopyStats, Source, Target};
pub use error::Error;
pub use manifest::{
    is_digest, sha256_digest, Manifest, ACCEPTED, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX,
    OCI_MANIFEST,
};
pub use push::{artifact_manifest, push_artifact, read_layer, read_layer_to};
