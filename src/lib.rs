//! kaws: Kubernetes clusters on AWS, with Terraform and a PKI whose private
//! keys are encrypted at rest with AWS KMS.
//!
//! The library is the product; the `kaws` binary only parses arguments and
//! calls one operation of [`ops`].

#![forbid(unsafe_code)]

pub mod bootstrap_token;
mod der;
pub mod encryption;
pub mod error;
pub mod exec_credential;
pub mod fsutil;
pub mod kms;
pub mod kubeconfig;
pub mod layout;
pub mod lock;
pub mod ops;
pub mod pki;
pub mod policy;
pub mod seal;
pub mod secret;
pub mod settings;
pub mod signer;
pub mod terraform;
pub mod text;
pub mod x509;

pub use error::{Error, ErrorKind, Result};
