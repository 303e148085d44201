//! `#[derive(Block)]` for boson. Use it through `boson::nn::Block`; see that trait's docs.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{parse_macro_input, parse_quote, Data, DeriveInput, Fields, LitStr};

/// Implements `boson::nn::Block` from a struct's fields.
///
/// Every field is visited under its own name, in declaration order: parameters,
/// child blocks, `Option<_>`, `Vec<_>` (named `field.0`, `field.1`, ...), `Box` and `Arc`
/// of them. Field attributes:
/// - `#[block(skip)]`: configuration that is neither a parameter nor state (a skipped
///   field whose type is a block is still visited: its parameters and state, such as a
///   `Dropout`'s random stream, belong to the model and its checkpoints);
/// - `#[block(rename = "name")]`: visit the field under another name;
/// - `#[block(state)]`: non-parameter state a checkpoint must hold (a `boson::nn::State`).
///
/// Struct attribute `#[block(kind = "name")]` sets `Block::kind` (default: the
/// type's name in lowercase, as Gluon's prefixes). Each type parameter gets a
/// `Block` bound.
#[proc_macro_derive(Block, attributes(block))]
pub fn derive_block(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What a field's `#[block(...)]` attributes say.
#[derive(Default)]
struct FieldAttrs {
    skip: bool,
    state: bool,
    rename: Option<String>,
}

fn field_attrs(attrs: &[syn::Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("block")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                out.skip = true;
            } else if meta.path.is_ident("state") {
                out.state = true;
            } else if meta.path.is_ident("rename") {
                out.rename = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                return Err(meta.error("expected `skip`, `state` or `rename = \"...\"`"));
            }
            Ok(())
        })?;
    }
    if out.skip && (out.state || out.rename.is_some()) {
        return Err(syn::Error::new_spanned(
            &attrs[0],
            "a skipped field cannot also be `state` or renamed",
        ));
    }
    Ok(out)
}

fn kind_attr(input: &DeriveInput) -> syn::Result<String> {
    let mut kind = input.ident.to_string().to_lowercase();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("block")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("kind") {
                kind = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("expected `kind = \"...\"`"))
            }
        })?;
    }
    Ok(kind)
}

fn expand(mut input: DeriveInput) -> syn::Result<Tokens> {
    let kind = kind_attr(&input)?;
    let visits = match &input.data {
        Data::Struct(s) => field_visits(&s.fields)?,
        Data::Enum(e) if e.variants.iter().all(|v| v.fields.is_empty()) => Vec::new(),
        _ => {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "derive(Block) supports structs and enums without fields",
            ))
        }
    };
    for param in input.generics.type_params_mut() {
        param.bounds.push(parse_quote!(::boson::nn::Block));
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::boson::nn::Block for #name #ty_generics #where_clause {
            fn visit(&self, path: &str, visitor: &mut dyn ::boson::nn::Visitor) {
                let _ = (&path, &visitor);
                #(#visits)*
            }
            fn kind(&self) -> &'static str {
                #kind
            }
        }
    })
}

fn field_visits(fields: &Fields) -> syn::Result<Vec<Tokens>> {
    let mut out = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        let attrs = field_attrs(&field.attrs)?;
        let member: syn::Member = match &field.ident {
            Some(ident) => ident.clone().into(),
            None => syn::Index::from(index).into(),
        };
        if attrs.skip {
            out.push(skipped_visit(&member, field));
            continue;
        }
        let name = attrs.rename.unwrap_or_else(|| match &field.ident {
            Some(ident) => ident.to_string().trim_start_matches("r#").to_string(),
            None => index.to_string(),
        });
        out.push(if attrs.state {
            quote! {
                ::boson::nn::Visitor::state(
                    visitor, &::boson::nn::join_path(path, #name), &self.#member);
            }
        } else {
            quote! {
                ::boson::nn::Block::visit(
                    &self.#member, &::boson::nn::join_path(path, #name), visitor);
            }
        });
    }
    Ok(out)
}

/// A skipped field: nothing, unless its type is a `Block` (picked by autoref
/// specialization, so any type may be skipped), which is visited under the field's name.
fn skipped_visit(member: &syn::Member, field: &syn::Field) -> Tokens {
    let name = match &field.ident {
        Some(ident) => ident.to_string().trim_start_matches("r#").to_string(),
        None => match member {
            syn::Member::Unnamed(i) => i.index.to_string(),
            syn::Member::Named(n) => n.to_string(),
        },
    };
    quote! {
        {
            struct Probe<'a, T: ?Sized>(&'a T);
            trait VisitIfBlock {
                fn visit_if_block(&self, path: &str, visitor: &mut dyn ::boson::nn::Visitor);
            }
            impl<T: ::boson::nn::Block + ?Sized> VisitIfBlock for Probe<'_, T> {
                fn visit_if_block(&self, path: &str, visitor: &mut dyn ::boson::nn::Visitor) {
                    ::boson::nn::Block::visit(self.0, path, visitor);
                }
            }
            trait NotABlock {
                fn visit_if_block(&self, _: &str, _: &mut dyn ::boson::nn::Visitor) {}
            }
            impl<T: ?Sized> NotABlock for &Probe<'_, T> {}
            (&Probe(&self.#member)).visit_if_block(
                &::boson::nn::join_path(path, #name), visitor);
        }
    }
}
