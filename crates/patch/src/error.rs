//! Errors of the three patch engines. Messages follow upstream's libraries
//! (`gopkg.in/evanphx/json-patch.v4` for JSON patch, `k8s.io/apimachinery/pkg/util/mergepatch`
//! for strategic merge patch), because clients and scripts match on them; the HTTP status
//! mirrors how `k8s.io/apiserver/pkg/endpoints/handlers/patch.go` wraps each of them.

/// Which location of a JSON patch operation could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointerRole {
    /// The operation's `path`.
    Path,
    /// The `from` of a move or copy.
    From,
    /// The `path` of a move or copy (where the value goes).
    Destination,
}

/// An error from one of the patch engines.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    // ---- JSON patch (RFC 6902) ----
    /// The patch document is not a list of operation objects.
    #[error("{reason}")]
    JsonPatchDecode { reason: String },
    /// More operations than the API server accepts in one request.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    JsonPatchTooManyOperations { max: usize, got: usize },
    /// `op` is none of add, remove, replace, move, copy, test.
    #[error("Unexpected kind: {op}")]
    JsonPatchUnknownOperation { op: String },
    /// A member the operation needs (`path`, `from`, `value`) is absent or not a string.
    #[error("{op} operation failed to decode {field}: missing value")]
    JsonPatchMissingField {
        op: &'static str,
        field: &'static str,
    },
    /// The parent of the target location does not exist.
    #[error("{}", missing_path(.op, .path, *.role))]
    JsonPatchPathNotFound {
        op: &'static str,
        path: String,
        role: PointerRole,
    },
    /// The target member of an object does not exist (remove, replace, move).
    #[error("{}", missing_key(.op, .path, .key))]
    JsonPatchKeyNotFound {
        op: &'static str,
        path: String,
        key: String,
    },
    /// An array index is out of range.
    #[error("error in {op} for path: '{path}': Unable to access invalid index: {index}: invalid index referenced")]
    JsonPatchInvalidIndex {
        op: &'static str,
        path: String,
        index: String,
    },
    /// An array index is not a number.
    #[error("error in {op} for path: '{path}': value was not a proper array index: '{token}': strconv.Atoi: parsing \"{token}\": invalid syntax")]
    JsonPatchNotAnIndex {
        op: &'static str,
        path: String,
        token: String,
    },
    /// A `test` operation found a different value.
    #[error("testing value {path} failed: test failed")]
    JsonPatchTestFailed { path: String },
    /// A `move` whose `from` is a proper prefix of its `path` (RFC 6902 §4.4).
    #[error("move operation does not apply: from path {from} is a prefix of path {path}")]
    JsonPatchMoveIntoChild { from: String, path: String },

    // ---- strategic merge patch ----
    /// The document or the patch is not a JSON object (`mergepatch.ErrBadJSONDoc`).
    #[error("invalid JSON document")]
    InvalidJsonDocument,
    /// A list holds lists (`mergepatch.ErrNoListOfLists`).
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A `$deleteFromPrimitiveList/...` directive is malformed.
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// A `$retainKeys` directive is not a list, or the patch sets a key it does not retain.
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// A `$setElementOrder/...` directive is malformed.
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// The patch list and its `$setElementOrder` list disagree on order or membership.
    #[error("the order in patch list:\n{patch_list}\n doesn't match $setElementOrder list:\n{order_list}")]
    SetElementOrderMismatch {
        patch_list: String,
        order_list: String,
    },
    /// An element of a list merged by key lacks the key (`mergepatch.ErrNoMergeKey`).
    #[error("map: {map} does not contain declared merge key: {key}")]
    MissingMergeKey { map: String, key: String },
    /// A value has the wrong JSON type for where it sits (`mergepatch.ErrBadArgType`).
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    /// `$patch` holds something other than `replace` or `delete` (`mergepatch.ErrBadPatchType`).
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType { directive: String, map: String },
    /// `$patch: merge` on a list element, which upstream has never implemented.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// A list of objects has the `merge` strategy but no merge key.
    #[error("cannot merge lists without merge key for {type_name}")]
    MergeKeyRequired { type_name: &'static str },
    /// The elements of the lists being merged are of different JSON types.
    #[error("list element types are not identical: {lists}")]
    ListElementTypesDiffer { lists: String },
    /// An element of a list merged by key is not an object.
    #[error("value for key {index} is not a map.")]
    ListElementNotMap { index: usize },
    /// `$setElementOrder` names a list whose elements cannot be typed (both lists empty).
    #[error("no elements in any of the given slices")]
    NoListElements,
}

impl PatchError {
    /// The HTTP status upstream's PATCH handler answers with for this error: 400 for malformed
    /// patch documents and directives, 413 for too many JSON patch operations, 422 for a JSON
    /// patch that does not apply or a list of lists, and 500 for the strategic merge errors
    /// upstream passes through unwrapped (they become `InternalError` statuses).
    pub fn http_status(&self) -> u16 {
        use PatchError::*;
        match self {
            JsonPatchDecode { .. }
            | InvalidJsonDocument
            | BadPatchFormatForPrimitiveList
            | BadPatchFormatForRetainKeys
            | BadPatchFormatForSetElementOrderList => 400,
            JsonPatchTooManyOperations { .. } => 413,
            JsonPatchUnknownOperation { .. }
            | JsonPatchMissingField { .. }
            | JsonPatchPathNotFound { .. }
            | JsonPatchKeyNotFound { .. }
            | JsonPatchInvalidIndex { .. }
            | JsonPatchNotAnIndex { .. }
            | JsonPatchTestFailed { .. }
            | JsonPatchMoveIntoChild { .. }
            | ListOfLists => 422,
            SetElementOrderMismatch { .. }
            | MissingMergeKey { .. }
            | BadArgType { .. }
            | BadPatchType { .. }
            | MergeDirectiveInList
            | MergeKeyRequired { .. }
            | ListElementTypesDiffer { .. }
            | ListElementNotMap { .. }
            | NoListElements => 500,
        }
    }
}

fn missing_path(op: &str, path: &str, role: PointerRole) -> String {
    // The quoting differs per operation in evanphx/json-patch; keep it byte-identical.
    match (op, role) {
        ("add" | "remove", _) => {
            format!("{op} operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        ("test", _) => {
            format!("test operation does not apply: is missing path: {path}: missing value")
        }
        (_, PointerRole::From) => {
            format!(
                "{op} operation does not apply: doc is missing from path: {path}: missing value"
            )
        }
        (_, PointerRole::Destination) => format!(
            "{op} operation does not apply: doc is missing destination path: {path}: missing value"
        ),
        (_, PointerRole::Path) => {
            format!("{op} operation does not apply: doc is missing path: {path}: missing value")
        }
    }
}

fn missing_key(op: &str, path: &str, key: &str) -> String {
    match op {
        "replace" => format!("replace operation does not apply: doc is missing key: {path}: missing value"),
        "move" => format!(
            "error in move for path: '{key}': Unable to remove nonexistent key: {key}: missing value"
        ),
        "copy" => format!("copy operation does not apply: doc is missing from path: {path}: missing value"),
        _ => format!(
            "error in {op} for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
        ),
    }
}
