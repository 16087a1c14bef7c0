//! structured-merge-diff v4's `merge.Updater` (`merge/update.go`): ownership bookkeeping for
//! updates and applies, conflict detection, and pruning of fields an applier stopped
//! applying. Objects are never converted between API versions here: every manager's set is
//! compared against the object at the request's version.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fieldpath::{values_equal, Set};
use super::managed::{ManagedFields, VersionedSet};
use super::schema::TypeSchema;
use super::typed::{
    compare, ensure_named_fields_are_members, merge, remove_items, to_field_set, Comparison,
};

/// Fields of other managers that a change would take over: manager identifier → paths.
pub(crate) type ConflictSets = BTreeMap<String, Set>;

pub(crate) struct Updater<'a> {
    pub(crate) schema: &'a TypeSchema,
    /// Paths whose ownership is not tracked (`IgnoredFields`, the strategy's reset fields).
    pub(crate) ignored: &'a Set,
}

impl Updater<'_> {
    /// `Updater.update`: takes the fields `workflow` changed away from the other managers
    /// (or reports them as conflicts) and drops removed fields from everyone.
    fn update_owners(
        &self,
        old: &Value,
        new: &Value,
        managers: &mut ManagedFields,
        workflow: &str,
        force: bool,
    ) -> Result<Comparison, ConflictSets> {
        let cmp = compare(self.schema, old, new).exclude(self.ignored);
        let changed = cmp.modified.union(&cmp.added);
        let mut conflicts = ConflictSets::new();
        for (manager, vs) in managers.iter() {
            if manager == workflow {
                continue;
            }
            let taken = vs.set.intersection(&changed);
            if !taken.is_empty() {
                conflicts.insert(manager.clone(), taken);
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(conflicts);
        }
        for (manager, vs) in managers.iter_mut() {
            if let Some(taken) = conflicts.get(manager) {
                vs.set = vs.set.difference(taken);
            }
            if manager != workflow && !cmp.removed.is_empty() {
                vs.set = vs.set.difference(&cmp.removed);
            }
        }
        managers.retain(|_, vs| !vs.set.is_empty());
        Ok(cmp)
    }

    /// `Updater.Update`: the manager of a create/update/patch gains what it changed.
    pub(crate) fn update(
        &self,
        live: &Value,
        new: &Value,
        version: &str,
        managers: &mut ManagedFields,
        manager: &str,
    ) {
        let Ok(cmp) = self.update_owners(live, new, managers, manager, true) else {
            return;
        };
        let previous = managers
            .get(manager)
            .map(|vs| vs.set.clone())
            .unwrap_or_default();
        let set = previous
            .union(&cmp.modified)
            .union(&cmp.added)
            .difference(&cmp.removed)
            .recursive_difference(self.ignored);
        if set.is_empty() {
            managers.remove(manager);
        } else {
            managers.insert(
                manager.to_string(),
                VersionedSet {
                    set,
                    api_version: version.to_string(),
                    applied: false,
                },
            );
        }
    }

    /// `Updater.Apply`: merges the configuration into the live object, makes the applier own
    /// exactly the configuration's fields, prunes what it no longer applies, and checks
    /// conflicts. Returns `None` for the object when nothing changed.
    pub(crate) fn apply(
        &self,
        live: &Value,
        config: &Value,
        version: &str,
        managers: &mut ManagedFields,
        manager: &str,
        force: bool,
    ) -> Result<Option<Value>, ConflictSets> {
        let merged = merge(self.schema, live, config);
        let last = managers.get(manager).map(|vs| vs.set.clone());
        let set = to_field_set(self.schema, config).recursive_difference(self.ignored);
        managers.insert(
            manager.to_string(),
            VersionedSet {
                set,
                api_version: version.to_string(),
                applied: true,
            },
        );
        let new = self.prune(merged, managers, last.as_ref());
        self.update_owners(live, &new, managers, manager, force)?;
        Ok((!values_equal(live, &new)).then_some(new))
    }

    /// `Updater.prune`: removes a field, list or map item iff the applier applied it last
    /// time, did not apply it now, and no other manager owns it.
    fn prune(&self, merged: Value, managers: &ManagedFields, last: Option<&Set>) -> Value {
        let Some(last) = last.filter(|s| !s.is_empty()) else {
            return merged;
        };
        let ensure = |s: &Set| ensure_named_fields_are_members(self.schema, s);
        let last = ensure(last);
        let pruned = remove_items(self.schema, &merged, &last);

        // addBackOwnedItems: put back whatever some manager (the applier's new set included)
        // still owns.
        let owned = managers
            .values()
            .fold(Set::new(), |acc, vs| acc.union(&vs.set));
        let merged_set = ensure(&to_field_set(self.schema, &merged));
        let pruned_set = ensure(&to_field_set(self.schema, &pruned));
        let pruned = remove_items(
            self.schema,
            &merged,
            &merged_set.difference(&pruned_set.union(&ensure(&owned))),
        );

        // addBackDanglingItems: only remove what the applier owned before.
        let pruned_set = ensure(&to_field_set(self.schema, &pruned));
        remove_items(
            self.schema,
            &merged,
            &merged_set.difference(&pruned_set).intersection(&last),
        )
    }
}
