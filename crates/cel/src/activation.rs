//! Top-level variable bindings supplied at evaluation time.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::EvalError;
use crate::value::Value;

#[derive(Debug, Clone)]
pub(crate) enum Binding {
    Value(Value),
    Namespace(Arc<HashMap<String, Result<Value, EvalError>>>),
}

/// The values of the top-level variables for one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Activation {
    bindings: HashMap<String, Binding>,
}

impl Activation {
    /// An activation with no bindings.
    pub fn new() -> Activation {
        Activation::default()
    }

    /// Binds a top-level variable.
    pub fn bind(&mut self, name: &str, value: Value) {
        self.bindings
            .insert(name.to_string(), Binding::Value(value));
    }

    /// Binds a namespace whose members are looked up by `name.member`. Accessing a member
    /// whose value is an error raises that error; an unknown member raises `no such key`.
    pub fn bind_namespace(&mut self, name: &str, members: Vec<(String, Result<Value, EvalError>)>) {
        self.bindings.insert(
            name.to_string(),
            Binding::Namespace(Arc::new(members.into_iter().collect())),
        );
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Binding> {
        self.bindings.get(name)
    }
}
