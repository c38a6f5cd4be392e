// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//! Finds libiovaq, in this order:
//!  1. `IOVAQ_LIB_DIR`: a directory holding libiovaq.so (or libiovaq.a with
//!     `IOVAQ_STATIC=1`), for example a CMake build directory;
//!  2. `pkg-config --libs iovaq` (honours `PKG_CONFIG_PATH`), the installed iovaq.pc.
//! `IOVAQ_INCLUDE_DIR` (or pkg-config's includedir) is passed on to the tests as
//! `IOVAQ_SYS_INCLUDE_DIR`, for the layout test's C compiler.
use std::env;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Option<String> {
    let out = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(args)
        .arg("iovaq")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    for v in ["IOVAQ_LIB_DIR", "IOVAQ_STATIC", "IOVAQ_INCLUDE_DIR", "PKG_CONFIG_PATH", "PKG_CONFIG"] {
        println!("cargo:rerun-if-env-changed={}", v);
    }
    let statik = env::var("IOVAQ_STATIC").map(|v| v == "1").unwrap_or(false);
    let mut include = env::var("IOVAQ_INCLUDE_DIR").ok();
    if let Ok(dir) = env::var("IOVAQ_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
        if statik {
            println!("cargo:rustc-link-lib=static=iovaq");
            println!("cargo:rustc-link-lib=dylib=pthread");
        } else {
            println!("cargo:rustc-link-lib=dylib=iovaq");
        }
    } else if let Some(libs) = pkg_config(if statik { &["--libs", "--static"][..] } else { &["--libs"][..] }) {
        for flag in libs.split_whitespace() {
            if let Some(d) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={}", d);
            } else if let Some(l) = flag.strip_prefix("-l") {
                let kind = if statik && l == "iovaq" { "static" } else { "dylib" };
                println!("cargo:rustc-link-lib={}={}", kind, l);
            }
        }
        if include.is_none() {
            include = pkg_config(&["--variable=includedir"]);
        }
    } else {
        panic!(
            "libiovaq not found: set IOVAQ_LIB_DIR to the directory of libiovaq.so, or install \
             libiovaq where pkg-config finds iovaq.pc (PKG_CONFIG_PATH)"
        );
    }
    if let Some(inc) = include {
        println!("cargo:rustc-env=IOVAQ_SYS_INCLUDE_DIR={}", inc);
        println!("cargo:include={}", inc);
    }
}
