//! What an invalid input expands to: the errors, plus a stub `impl FlipCodec` with the
//! type's own generics, so uses of the type elsewhere do not add a cascade of "FlipCodec is
//! not implemented" errors to the real one.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

pub fn expand(input: &DeriveInput, errors: syn::Error) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let errors = errors.to_compile_error();
    quote! {
        #errors

        #[automatically_derived]
        impl #impl_generics ::flipcache::__private01::FlipCodec
            for #ident #ty_generics #where_clause
        {
            fn encode(&self, _: &mut ::flipcache::__private01::Vec<u8>) {
                ::core::unreachable!()
            }

            fn decode(
                _: &mut ::flipcache::__private01::Reader<'_>,
            ) -> ::core::result::Result<Self, ::flipcache::__private01::DecodeError> {
                ::core::unreachable!()
            }
        }
    }
}
