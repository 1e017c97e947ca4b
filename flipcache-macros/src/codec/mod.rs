//! `#[derive(FlipCodec)]`: ast → attr → valid → expand, with a fallback on error.

mod ast;
mod attr;
mod expand;
mod fallback;
mod schema;
mod valid;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// The derive's expansion: the impls, or the errors plus a stub impl.
pub fn derive(input: &DeriveInput) -> TokenStream {
    let result = ast::Input::from_syn(input).and_then(|model| {
        valid::check(&model)?;
        Ok(expand::expand(&model))
    });
    result.unwrap_or_else(|errors| fallback::expand(input, errors))
}

/// Collects every error of one derive, to report them together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// All the errors so far, and `error` last.
    fn fail(self, error: syn::Error) -> syn::Error {
        match self.0 {
            Some(mut all) => {
                all.combine(error);
                all
            }
            None => error,
        }
    }

    fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
