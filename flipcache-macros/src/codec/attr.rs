//! `#[flipcodec(...)]` attributes, parsed once: `no_value` on the type, `skip` and
//! `with = path` on fields. Syntax errors and unknown names are reported here; combinations
//! that parse but make no sense are left to `valid.rs`.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, Lit, Path};

use super::Errors;

/// Attributes on the deriving type.
#[derive(Default)]
pub struct Container {
    /// `no_value`: do not implement `FlipValue`.
    pub no_value: Option<Path>,
}

/// Attributes on a field.
#[derive(Default)]
pub struct Field {
    /// `skip`: not encoded, `Default::default()` when decoded.
    pub skip: Option<Path>,
    /// `with = path`: encoded by `path::encode` / `path::decode`.
    pub with: Option<With>,
}

/// A field's `with = path`.
pub struct With {
    /// The `with` keyword, for errors about the attribute as a whole.
    pub keyword: Path,
    /// The module (or type) holding `encode` and `decode`.
    pub path: Path,
}

/// Attributes on an enum variant: none exist, so any is kept to be reported.
#[derive(Default)]
pub struct Variant<'a> {
    pub unsupported: Vec<&'a Attribute>,
}

fn ours(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("flipcodec"))
}

fn unknown(meta: &ParseNestedMeta<'_>, place: &str, expected: &str) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map_or_else(|| "?".to_string(), ToString::to_string);
    meta.error(format!(
        "unknown flipcodec attribute `{name}` on a {place}; expected {expected}"
    ))
}

fn duplicate(meta: &ParseNestedMeta<'_>, name: &str) -> syn::Error {
    meta.error(format!("duplicate flipcodec attribute `{name}`"))
}

pub fn container(attrs: &[Attribute], errors: &mut Errors) -> Container {
    let mut out = Container::default();
    for attr in ours(attrs) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("no_value") {
                if out.no_value.is_some() {
                    return Err(duplicate(&meta, "no_value"));
                }
                out.no_value = Some(meta.path.clone());
                Ok(())
            } else {
                Err(unknown(&meta, "type", "`no_value`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

pub fn field(attrs: &[Attribute], errors: &mut Errors) -> Field {
    let mut out = Field::default();
    for attr in ours(attrs) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                if out.skip.is_some() {
                    return Err(duplicate(&meta, "skip"));
                }
                out.skip = Some(meta.path.clone());
                Ok(())
            } else if meta.path.is_ident("with") {
                if out.with.is_some() {
                    return Err(duplicate(&meta, "with"));
                }
                let keyword = meta.path.clone();
                let path = with_path(meta.value()?.parse()?)?;
                out.with = Some(With { keyword, path });
                Ok(())
            } else {
                Err(unknown(&meta, "field", "`skip` or `with = path`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

fn with_path(value: Expr) -> syn::Result<Path> {
    match value {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => Ok(p.path),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(syn::Error::new(
            s.span(),
            format!(
                "expected a path, found a string: write `with = {}` without quotes",
                s.value()
            ),
        )),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a path to a module (or type) with `encode` and `decode` functions, \
             like `with = my_codec`",
        )),
    }
}

pub fn variant(attrs: &[Attribute]) -> Variant<'_> {
    Variant {
        unsupported: ours(attrs).collect(),
    }
}
