//! Builds the Lua 5.1.5 interpreter the scripting engine runs on.
//!
//! The sources are the pristine 5.1.5 files the `lua-src` crate ships (a build dependency, so
//! cargo fetches them); we copy them to OUT_DIR, apply our own changes below, compile them
//! with `cc`, and link the result for `mlua-sys` (whose `external` feature leaves linking to
//! us). The changes are what Redis 7.0's embedded Lua has beyond stock 5.1.5, written here
//! from the published descriptions of each fix:
//!
//! - read-only tables (`lua_enablereadonlytable`): a flag on each table that every write
//!   path checks, so scripts cannot change globals or library tables;
//! - `lua_canyield`: whether a count hook may yield the running coroutine (5.1 allows it
//!   only with no C call between the hook and the coroutine's start), so a long script can
//!   give its core back to other clients between hook calls;
//! - no loading of precompiled bytecode, and the CVE fixes listed in `PATCHES` (each names
//!   its CVE).
//!
//! Every change is an exact text replacement that must match once: a different Lua source
//! stops the build instead of building something unpatched.

use std::path::{Path, PathBuf};

/// (file, text to find, replacement, why).
const PATCHES: &[(&str, &str, &str, &str)] = &[
    // --- read-only tables ---
    (
        "lobject.h",
        "  lu_byte lsizenode;  /* log2 of size of `node' array */\n  struct Table *metatable;",
        "  lu_byte lsizenode;  /* log2 of size of `node' array */\n  lu_byte readonly;  /* redcell: writes raise an error */\n  struct Table *metatable;",
        "read-only flag",
    ),
    (
        "ltable.c",
        "  t->metatable = NULL;\n  t->flags = cast_byte(~0);",
        "  t->metatable = NULL;\n  t->readonly = 0;\n  t->flags = cast_byte(~0);",
        "new tables are writable",
    ),
    (
        "lvm.c",
        "      Table *h = hvalue(t);\n      TValue *oldval = luaH_set(L, h, key); /* do a primitive set */",
        "      Table *h = hvalue(t);\n      TValue *oldval;\n      if (h->readonly)\n        luaG_runerror(L, \"Attempt to modify a readonly table\");\n      oldval = luaH_set(L, h, key); /* do a primitive set */",
        "assignments to a read-only table",
    ),
    (
        "lapi.c",
        "  api_check(L, ttistable(t));\n  setobj2t(L, luaH_set(L, hvalue(t), L->top-2), L->top-1);",
        "  api_check(L, ttistable(t));\n  if (hvalue(t)->readonly)\n    luaG_runerror(L, \"Attempt to modify a readonly table\");\n  setobj2t(L, luaH_set(L, hvalue(t), L->top-2), L->top-1);",
        "rawset on a read-only table",
    ),
    (
        "lapi.c",
        "  api_check(L, ttistable(o));\n  setobj2t(L, luaH_setnum(L, hvalue(o), n), L->top-1);",
        "  api_check(L, ttistable(o));\n  if (hvalue(o)->readonly)\n    luaG_runerror(L, \"Attempt to modify a readonly table\");\n  setobj2t(L, luaH_setnum(L, hvalue(o), n), L->top-1);",
        "rawseti (table.insert, table.sort ...) on a read-only table",
    ),
    (
        "lapi.c",
        "  switch (ttype(obj)) {\n    case LUA_TTABLE: {\n      hvalue(obj)->metatable = mt;",
        "  switch (ttype(obj)) {\n    case LUA_TTABLE: {\n      if (hvalue(obj)->readonly)\n        luaG_runerror(L, \"Attempt to modify a readonly table\");\n      hvalue(obj)->metatable = mt;",
        "setmetatable on a read-only table",
    ),
    (
        "lapi.c",
        "LUA_API int lua_setfenv (lua_State *L, int idx) {",
        "LUA_API void lua_enablereadonlytable (lua_State *L, int idx, int enabled) {\n  const TValue *o = index2adr(L, idx);\n  api_check(L, ttistable(o));\n  hvalue(o)->readonly = (lu_byte)(enabled != 0);\n}\n\n\
LUA_API int lua_isreadonlytable (lua_State *L, int idx) {\n  const TValue *o = index2adr(L, idx);\n  return ttistable(o) && hvalue(o)->readonly;\n}\n\n\
LUA_API int lua_canyield (lua_State *L) {\n  return L->nCcalls <= L->baseCcalls;\n}\n\n\
LUA_API int lua_setfenv (lua_State *L, int idx) {",
        "read-only table API and lua_canyield",
    ),
    (
        "lua.h",
        "LUA_API int   (lua_setfenv) (lua_State *L, int idx);",
        "LUA_API int   (lua_setfenv) (lua_State *L, int idx);\nLUA_API void  (lua_enablereadonlytable) (lua_State *L, int idx, int enabled);\nLUA_API int   (lua_isreadonlytable) (lua_State *L, int idx);\nLUA_API int   (lua_canyield) (lua_State *L);",
        "declarations",
    ),
    // --- hardening ---
    (
        "ldo.c",
        "  tf = ((c == LUA_SIGNATURE[0]) ? luaU_undump : luaY_parser)(L, p->z,\n                                                             &p->buff, p->name);",
        "  (void)c;  /* redcell: never load precompiled chunks (crafted bytecode escapes the VM) */\n  tf = luaY_parser(L, p->z, &p->buff, p->name);",
        "no bytecode loading (loadstring of string.dump output is a syntax error, as Redis)",
    ),
    (
        "lparser.c",
        "  lexstate.buff = buff;\n  luaX_setinput(L, &lexstate, z, luaS_new(L, name));",
        "  TString *tname = luaS_new(L, name);\n  setsvalue2s(L, L->top, tname);  /* redcell: keep the chunk name alive (CVE-2025-49844) */\n  incr_top(L);\n  lexstate.buff = buff;\n  luaX_setinput(L, &lexstate, z, tname);",
        "CVE-2025-49844: the chunk name is anchored on the stack while parsing",
    ),
    (
        "lparser.c",
        "  lua_assert(lexstate.fs == NULL);\n  return funcstate.f;",
        "  lua_assert(lexstate.fs == NULL);\n  L->top--;  /* redcell: the anchored chunk name */\n  return funcstate.f;",
        "CVE-2025-49844: unanchor the chunk name",
    ),
    (
        "lbaselib.c",
        "  n = e - i + 1;  /* number of elements */\n  if (n <= 0 || !lua_checkstack(L, n))  /* n <= 0 means arith. overflow */\n    return luaL_error(L, \"too many results to unpack\");",
        "  {  /* redcell: the count in unsigned arithmetic, no signed overflow (CVE-2025-46817) */\n    unsigned int un = (unsigned int)e - (unsigned int)i;\n    if (un >= (unsigned int)INT_MAX || !lua_checkstack(L, (int)un + 1))\n      return luaL_error(L, \"too many results to unpack\");\n    n = (int)un + 1;\n  }",
        "CVE-2025-46817: unpack's element count cannot overflow",
    ),
    (
        "llex.c",
        "void luaX_setinput (lua_State *L, LexState *ls, ZIO *z, TString *source) {\n  ls->decpoint = '.';",
        "void luaX_setinput (lua_State *L, LexState *ls, ZIO *z, TString *source) {\n  ls->t.token = 0;  /* redcell: an error before the first token names none (CVE-2025-46819) */\n  ls->decpoint = '.';",
        "CVE-2025-46819: 'chunk has too many lines' before any token read an unset token",
    ),
    (
        "llex.c",
        "static int skip_sep (LexState *ls) {\n  int count = 0;",
        "static ptrdiff_t skip_sep (LexState *ls) {\n  ptrdiff_t count = 0;  /* redcell: no int overflow past 2^31 '=' (CVE-2025-46819) */",
        "CVE-2025-46819: a long bracket's level is counted without overflow",
    ),
    (
        "llex.c",
        "static void read_long_string (LexState *ls, SemInfo *seminfo, int sep) {",
        "static void read_long_string (LexState *ls, SemInfo *seminfo, ptrdiff_t sep) {",
        "CVE-2025-46819: the level stays wide where the string is cut out of the buffer",
    ),
    (
        "llex.c",
        "          int sep = skip_sep(ls);\n          luaZ_resetbuffer(ls->buff);",
        "          ptrdiff_t sep = skip_sep(ls);\n          luaZ_resetbuffer(ls->buff);",
        "CVE-2025-46819: a long comment's level",
    ),
    (
        "llex.c",
        "        int sep = skip_sep(ls);\n        if (sep >= 0) {\n          read_long_string(ls, seminfo, sep);",
        "        ptrdiff_t sep = skip_sep(ls);\n        if (sep >= 0) {\n          read_long_string(ls, seminfo, sep);",
        "CVE-2025-46819: a long string's level",
    ),
];

/// Where the pristine Lua 5.1.5 sources are: `REDCELL_LUA51_SRC`, or the `lua-src` crate in
/// cargo's registry (the build dependency makes sure it was fetched).
fn source_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REDCELL_LUA51_SRC") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let mut found: Vec<PathBuf> = Vec::new();
    let registry = home.join("registry").join("src");
    for index in std::fs::read_dir(&registry).into_iter().flatten().flatten() {
        for krate in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = krate.file_name().to_string_lossy().into_owned();
            let dir = krate.path().join("lua-5.1.5");
            if name.starts_with("lua-src-") && dir.join("lapi.c").exists() {
                found.push(dir);
            }
        }
    }
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "Lua 5.1.5 sources not found under {} (lua-src crate); set REDCELL_LUA51_SRC",
            registry.display()
        )
    })
}

pub fn build() {
    println!("cargo:rerun-if-changed=build/lua51.rs");
    println!("cargo:rerun-if-env-changed=REDCELL_LUA51_SRC");
    let src = source_dir();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("lua51");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/lua51");
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(&src).expect("read Lua sources").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".c") || name.ends_with(".h") {
            let text = std::fs::read_to_string(entry.path()).expect("read Lua source");
            files.push((name, text));
        }
    }
    for (file, find, replace, why) in PATCHES {
        let (_, text) = files
            .iter_mut()
            .find(|(n, _)| n == file)
            .unwrap_or_else(|| panic!("Lua patch ({why}): no file {file}"));
        let n = text.matches(find).count();
        assert_eq!(
            n, 1,
            "Lua patch ({why}): expected text found {n} times in {file}"
        );
        *text = text.replacen(find, replace, 1);
    }
    // The stand-alone interpreter and compiler, and libraries scripts never get.
    let skip = [
        "lua.c",
        "luac.c",
        "print.c",
        "linit.c",
        "loslib.c",
        "liolib.c",
        "loadlib.c",
    ];
    let mut build = cc::Build::new();
    for (name, text) in &files {
        let path = out.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).expect("write patched Lua source");
        }
        if name.ends_with(".c") && !skip.contains(&name.as_str()) {
            build.file(&path);
        }
    }
    build
        .include(&out)
        .define("LUA_USE_POSIX", None)
        .warnings(false)
        .opt_level(2)
        .compile("redcell_lua51");
}
