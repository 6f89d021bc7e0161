//! A step method's signature: which parameters are a join's inputs, which a foreach item, and
//! what it returns.

use syn::{FnArg, GenericArgument, ImplItemFn, PathArguments, ReturnType, Type};

use crate::model::{ItemParam, OutputDef, SignatureDef};

/// Sorts `method`'s parameters and return type; whether they fit the step is checked later.
pub fn parse_signature(method: &ImplItemFn) -> SignatureDef {
    let mut inputs_params = Vec::new();
    let mut item_params = Vec::new();
    for arg in &method.sig.inputs {
        if let FnArg::Typed(pt) = arg {
            if is_inputs_type(&pt.ty) {
                inputs_params.push(pt.clone());
            } else {
                item_params.push(ItemParam {
                    ty: (*pt.ty).clone(),
                    param: pt.clone(),
                });
            }
        }
    }
    let output = match &method.sig.output {
        ReturnType::Default => OutputDef::Unit,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => OutputDef::Unit,
            _ if is_result_type(ty) => OutputDef::Result { ty: (**ty).clone() },
            _ => OutputDef::Other { ty: (**ty).clone() },
        },
    };
    SignatureDef {
        ident_span: method.sig.ident.span(),
        inputs_params,
        item_params,
        output,
    }
}

/// Whether `ty` is `Inputs<…>` under any path.
fn is_inputs_type(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Inputs"),
        _ => false,
    }
}

/// Whether `ty` is `Result<…>` under any path (`std::result::Result`, `anyhow::Result`, …).
fn is_result_type(ty: &Type) -> bool {
    if let Type::Path(p) = ty
        && let Some(seg) = p.path.segments.last()
        && seg.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &seg.arguments
    {
        return args
            .args
            .iter()
            .any(|a| matches!(a, GenericArgument::Type(_)));
    }
    false
}
