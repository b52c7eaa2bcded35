//! The libraries Redis adds to Lua, written here in Rust against the Lua C API with the
//! behaviour of Redis's copies: `bit`, `cjson`, `cmsgpack` and `struct`.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use super::lua_State;

/// Opens every library as a global table.
pub(crate) unsafe fn open_all(l: *mut lua_State) {
    bit::open(l);
    cjson::open(l);
    cmsgpack::open(l);
    structlib::open(l);
}
