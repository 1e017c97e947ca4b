//! Misuses that parse but cannot work, each reported as a `syn::Error` at the offending
//! tokens. (Unions and malformed or unknown attributes are reported while parsing.)

use super::Errors;
use super::ast::Input;

pub fn check(input: &Input<'_>) -> syn::Result<()> {
    let mut errors = Errors::default();
    for field in input.all_fields() {
        if let (Some(_), Some(with)) = (&field.attrs.skip, &field.attrs.with) {
            errors.push(syn::Error::new_spanned(
                &with.keyword,
                "`skip` and `with` cannot be combined: a skipped field is not encoded",
            ));
        }
    }
    if let Input::Enum(e) = input {
        for variant in &e.variants {
            for attr in &variant.attrs.unsupported {
                errors.push(syn::Error::new_spanned(
                    attr,
                    format!(
                        "flipcodec attributes do not apply to enum variants (`{}`); put \
                         `skip` or `with = path` on its fields",
                        variant.ident
                    ),
                ));
            }
        }
    }
    errors.finish()
}
