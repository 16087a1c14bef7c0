//! Resource quantities as the scheduler counts them: the shared parser of
//! `ferrokube_api::quantity`.
pub use ferrokube_api::quantity::*;
