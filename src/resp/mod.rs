//! The RESP protocol: request decoding (`decode`), argument access (`args`), reply encoding
//! (`reply`) and reading replies back (`replies`).

pub mod args;
pub mod decode;
pub mod replies;
pub mod reply;

pub use args::{Args, OwnedArgs};
pub use decode::{Decoded, Decoder, ProtocolError};
pub use reply::Reply;
