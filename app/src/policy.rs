//! 権限 (the role policy): what each role may do, in one table, asked by `execute` for every
//! write and by the web UI for every page. What a role *sees* of a person (addresses, My
//! Numbers) is the privacy policy's (`daicho_domain::privacy`), which this table defers to.

use daicho_domain::privacy;
use daicho_domain::users::Role;

/// What a role may do. Each page and each write asks for one permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Search and view recipients (My Number masked).
    View,
    /// Record life events.
    Record,
    /// Approve a My Number link entered by someone else.
    Approve,
    /// Show a My Number in full (with a reason; logged).
    Reveal,
    /// See the address of a DV-protected recipient (logged).
    ProtectedAddress,
    /// See the PMH export preview and past batches.
    PmhView,
    /// Generate PMH batches and download their files.
    PmhExport,
    /// Manage users.
    Users,
    /// Search the access log.
    AccessLog,
    /// The audit page: chain status and checks, differences between positions.
    Audit,
    /// The health page (稼働状況): head, lags, last verify and backup, disk use.
    Health,
    /// The fee statement page (運営費明細) and its files.
    BillingView,
    /// Close a billing month.
    BillingClose,
    /// Record a fee schedule entry (料金表).
    FeeSchedule,
}

/// Whether `role` has `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    use Role as R;
    match permission {
        P::View => true,
        P::Record => matches!(role, R::Caseworker | R::Supervisor | R::Admin),
        // What a role sees of a person is the privacy policy's (domain::privacy).
        P::Reveal => privacy::may_reveal_my_number(role),
        P::ProtectedAddress => privacy::sees_protected_addresses(role),
        P::Approve | P::PmhExport => matches!(role, R::Supervisor | R::Admin),
        P::PmhView => matches!(role, R::Supervisor | R::Admin | R::Auditor),
        P::Users | P::Health => matches!(role, R::Admin),
        P::AccessLog => matches!(role, R::Admin | R::Auditor),
        P::Audit | P::BillingView => matches!(role, R::Supervisor | R::Admin | R::Auditor),
        P::BillingClose => matches!(role, R::Supervisor | R::Admin),
        P::FeeSchedule => matches!(role, R::Admin),
    }
}

/// The roles that have `permission`, in the order of [`Role::ALL`].
pub fn roles_with(permission: Permission) -> Vec<Role> {
    Role::ALL.into_iter().filter(|r| allows(*r, permission)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_permissions() {
        assert!(allows(Role::Viewer, Permission::View));
        assert!(!allows(Role::Viewer, Permission::Record));
        assert!(allows(Role::Caseworker, Permission::Record));
        assert!(!allows(Role::Caseworker, Permission::Approve));
        assert!(!allows(Role::Caseworker, Permission::ProtectedAddress));
        assert!(allows(Role::Supervisor, Permission::Reveal));
        assert!(!allows(Role::Supervisor, Permission::Users));
        assert!(allows(Role::Admin, Permission::Users));
        assert!(allows(Role::Auditor, Permission::AccessLog));
        assert!(!allows(Role::Auditor, Permission::Record));
    }

    #[test]
    fn the_roles_listed_for_a_permission_are_those_the_table_allows() {
        assert_eq!(roles_with(Permission::FeeSchedule), vec![Role::Admin]);
        assert_eq!(roles_with(Permission::BillingClose), vec![Role::Supervisor, Role::Admin]);
    }
}
