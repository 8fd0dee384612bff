//! The expressions `nftnl` lacks (limit, log, exthdr, rt, byteorder,
//! range, reject codes, NAT flags, meta time keys, ...), built on
//! libnftnl's generic expression API (`nftnl_expr_alloc` and
//! `nftnl_expr_set`) from a [`lower::Expr`]. The only module of fwd with
//! `unsafe`; every block says why it is sound.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{CString, c_void};
use std::ptr::NonNull;

use nftnl::expr::Expression;
use nftnl_sys as sys;

use crate::lower::Expr;

/// Errors of [`Built::new`].
#[derive(Debug, thiserror::Error)]
pub enum NlExprError {
    /// libnftnl does not know the expression (a library older than the
    /// one fwd was written against).
    #[error("libnftnl has no expression {0:?}")]
    Alloc(&'static str),
    /// libnftnl refused an attribute.
    #[error("libnftnl refused attribute {attr} of expression {name:?}")]
    Attr {
        /// Expression name.
        name: &'static str,
        /// `NFTNL_EXPR_*` attribute.
        attr: u32,
    },
}

/// A libnftnl expression made from an [`Expr`], ready to be added to an
/// `nftnl::Rule` (which then owns it).
#[derive(Debug)]
pub struct Built<'a> {
    spec: &'a Expr,
    /// Built and checked in [`Built::new`]; handed to the rule by the first
    /// `to_expr`.
    ready: Cell<Option<NonNull<sys::nftnl_expr>>>,
}

/// Allocates and fills one expression; frees it again on failure.
fn build(spec: &Expr) -> Result<NonNull<sys::nftnl_expr>, NlExprError> {
    // Names are static ASCII without NUL bytes (see `lower`).
    let name = CString::new(spec.name).map_err(|_| NlExprError::Alloc(spec.name))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the
    // call; libnftnl copies what it needs and returns NULL for an unknown
    // name or on allocation failure.
    let raw = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
    let expr = NonNull::new(raw).ok_or(NlExprError::Alloc(spec.name))?;
    for (attr, value) in &spec.attrs {
        let bytes = value.bytes();
        let attr16 = u16::try_from(*attr).map_err(|_| NlExprError::Attr {
            name: spec.name,
            attr: *attr,
        })?;
        // SAFETY: `expr` is a live expression from `nftnl_expr_alloc`;
        // `bytes` is valid for `bytes.len()` bytes for the whole call and
        // libnftnl copies them (it keeps no pointer to our buffer).
        let rc = unsafe {
            sys::nftnl_expr_set(
                expr.as_ptr(),
                attr16,
                bytes.as_ptr().cast::<c_void>(),
                bytes.len() as u32,
            )
        };
        if rc < 0 {
            // SAFETY: `expr` came from `nftnl_expr_alloc`, was never handed
            // to a rule, and is not used after this.
            unsafe { sys::nftnl_expr_free(expr.as_ptr()) };
            return Err(NlExprError::Attr {
                name: spec.name,
                attr: *attr,
            });
        }
    }
    Ok(expr)
}

impl<'a> Built<'a> {
    /// Builds the expression now, so that a refusal is an error here
    /// rather than an abort inside `nftnl::Rule::add_expr`.
    pub fn new(spec: &'a Expr) -> Result<Self, NlExprError> {
        let expr = build(spec)?;
        Ok(Self {
            spec,
            ready: Cell::new(Some(expr)),
        })
    }
}

impl Expression for Built<'_> {
    fn to_expr(&self, _rule: &nftnl::Rule<'_>) -> NonNull<sys::nftnl_expr> {
        if let Some(expr) = self.ready.take() {
            return expr;
        }
        // Asked a second time: build again. The same spec succeeded in
        // `new`, so failing now means libnftnl ran out of memory; nftnl
        // aborts in that case too.
        build(self.spec).unwrap_or_else(|_| std::process::abort())
    }
}

impl Drop for Built<'_> {
    fn drop(&mut self) {
        if let Some(expr) = self.ready.take() {
            // SAFETY: an expression still in `ready` was never handed to a
            // rule, so we are its only owner.
            unsafe { sys::nftnl_expr_free(expr.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::Value;

    #[test]
    fn an_unknown_expression_is_an_error() {
        let spec = Expr {
            name: "no-such-expression",
            attrs: vec![],
        };
        assert!(matches!(Built::new(&spec), Err(NlExprError::Alloc(_))));
    }

    #[test]
    fn a_known_expression_builds() {
        let spec = Expr {
            name: "limit",
            attrs: vec![(sys::NFTNL_EXPR_LIMIT_RATE, Value::U64(10))],
        };
        assert!(Built::new(&spec).is_ok());
    }
}
