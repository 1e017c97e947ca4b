//! The derive's input as a model of our concepts: a struct or an enum, its fields (encoded,
//! skipped, or encoded `with` a path), in declaration order.

use syn::{Data, DeriveInput, Fields as SynFields, Ident, Index, Member, Type};

use super::{Errors, attr};

pub enum Input<'a> {
    Struct(Struct<'a>),
    Enum(Enum<'a>),
}

pub struct Struct<'a> {
    pub original: &'a DeriveInput,
    pub attrs: attr::Container,
    pub fields: Fields<'a>,
}

pub struct Enum<'a> {
    pub original: &'a DeriveInput,
    pub attrs: attr::Container,
    pub variants: Vec<Variant<'a>>,
}

pub struct Variant<'a> {
    pub ident: &'a Ident,
    pub attrs: attr::Variant<'a>,
    pub fields: Fields<'a>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `{ a: A, b: B }`
    Named,
    /// `(A, B)`
    Tuple,
    /// No fields.
    Unit,
}

pub struct Fields<'a> {
    pub style: Style,
    pub list: Vec<Field<'a>>,
}

pub struct Field<'a> {
    /// `name` or `0`: how `self.` reaches it.
    pub member: Member,
    pub ty: &'a Type,
    pub attrs: attr::Field,
}

impl Field<'_> {
    /// Whether the field's own `FlipCodec` impl encodes it (neither skipped nor `with`).
    pub fn uses_own_codec(&self) -> bool {
        self.attrs.skip.is_none() && self.attrs.with.is_none()
    }

    pub fn is_encoded(&self) -> bool {
        self.attrs.skip.is_none()
    }
}

impl<'a> Input<'a> {
    pub fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let attrs = attr::container(&input.attrs, &mut errors);
        let model = match &input.data {
            Data::Struct(data) => Input::Struct(Struct {
                original: input,
                attrs,
                fields: Fields::from_syn(&data.fields, &mut errors),
            }),
            Data::Enum(data) => Input::Enum(Enum {
                original: input,
                attrs,
                variants: data
                    .variants
                    .iter()
                    .map(|v| Variant {
                        ident: &v.ident,
                        attrs: attr::variant(&v.attrs),
                        fields: Fields::from_syn(&v.fields, &mut errors),
                    })
                    .collect(),
            }),
            Data::Union(data) => {
                return Err(errors.fail(syn::Error::new(
                    data.union_token.span,
                    "FlipCodec cannot be derived for a union (which field is live is not \
                     known); use a struct or an enum",
                )));
            }
        };
        errors.finish().map(|()| model)
    }

    pub fn original(&self) -> &'a DeriveInput {
        match self {
            Input::Struct(s) => s.original,
            Input::Enum(e) => e.original,
        }
    }

    pub fn attrs(&self) -> &attr::Container {
        match self {
            Input::Struct(s) => &s.attrs,
            Input::Enum(e) => &e.attrs,
        }
    }

    /// Every field of the type, across all variants.
    pub fn all_fields(&self) -> Box<dyn Iterator<Item = &Field<'a>> + '_> {
        match self {
            Input::Struct(s) => Box::new(s.fields.list.iter()),
            Input::Enum(e) => Box::new(e.variants.iter().flat_map(|v| v.fields.list.iter())),
        }
    }
}

impl<'a> Fields<'a> {
    fn from_syn(fields: &'a SynFields, errors: &mut Errors) -> Self {
        let style = match fields {
            SynFields::Named(_) => Style::Named,
            SynFields::Unnamed(_) => Style::Tuple,
            SynFields::Unit => Style::Unit,
        };
        let list = fields
            .iter()
            .enumerate()
            .map(|(i, f)| Field {
                member: match &f.ident {
                    Some(ident) => Member::Named(ident.clone()),
                    None => Member::Unnamed(Index::from(i)),
                },
                ty: &f.ty,
                attrs: attr::field(&f.attrs, errors),
            })
            .collect();
        Fields { style, list }
    }
}
