//! The RESP protocol: request decoding (`decode`), argument access (`args`) and reply encoding (`reply`).

pub mod args;
pub mod decode;
pub mod reply;

pub use args::{Args, OwnedArgs};
pub use decode::{Decoded, Decoder, ProtocolError};
pub use reply::Reply;
