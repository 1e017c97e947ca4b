//! `#[flipcache(...)]`: memoizes a function through a flipcache hybrid cache.
//!
//! Pipeline: `attr.rs` parses the options, `ast.rs` models the function, `valid.rs` turns
//! every misuse into a spanned error, `expand.rs` writes the memoized function and its
//! companions (`handle.rs` the typed cache handle's parts). On any error the function is emitted unchanged next to the errors, so the rest
//! of the crate (and IDE completion) still sees it.

mod ast;
mod attr;
mod expand;
mod handle;
mod valid;

use proc_macro2::TokenStream;
use syn::ItemFn;

/// Errors collected across the pipeline, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

pub(crate) fn flipcache(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = attr::Options::parse(args, &mut errors);
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            errors.push(match syn::parse2::<syn::Item>(input.clone()) {
                Ok(other) => syn::Error::new_spanned(
                    quote::quote!(#other)
                        .into_iter()
                        .take(2)
                        .collect::<TokenStream>(),
                    "#[flipcache] memoizes functions: put it on a `fn` or an `async fn`",
                ),
                Err(_) => e,
            });
            return with_errors(input, errors);
        }
    };
    let function = ast::Function::from_syn(&item);
    valid::check(&function, &options, &mut errors);
    if errors.0.is_some() {
        return with_errors(input, errors);
    }
    expand::expand(&function, &options)
}

/// The user's item, unchanged, followed by the errors.
fn with_errors(mut input: TokenStream, errors: Errors) -> TokenStream {
    if let Some(e) = errors.0 {
        input.extend(e.to_compile_error());
    }
    input
}
