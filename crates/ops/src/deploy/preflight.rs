//! Checks of the account made before deploy changes anything, for limits that moto does not
//! model: a deployment that cannot complete fails before its first change, not half-way.
//!
//! Reserved concurrency: Lambda refuses a reservation that would leave fewer unreserved
//! concurrent executions than its minimum (100, or the whole account limit when that is lower,
//! as in new accounts whose limit is 10) — see docs/aws-behaviours.md. The fence reserves
//! `plan::FENCE_RESERVED_CONCURRENCY` (10), so a region whose functions reserve nothing else
//! needs a limit of at least 110; a deployment made when the fence reserved 1 takes 9 more.
//! The arithmetic is pure (`reservation_changes`, `check_unreserved`);
//! `read_account_concurrency` is the one call.

use super::plan::{Change, Plan, Resource};
use std::fmt;

/// Lambda keeps this many concurrent executions unreserved for the functions without a
/// reservation, or all of them when the account's limit is this or lower.
pub const UNRESERVED_FLOOR: i32 = 100;

/// The account's concurrency in the deployment's region, as `GetAccountSettings` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountConcurrency {
    /// `AccountLimit.ConcurrentExecutions`: the "Concurrent executions" quota.
    pub limit: i32,
    /// `AccountLimit.UnreservedConcurrentExecutions`: the limit minus every function's reservation.
    pub unreserved: i32,
}

impl AccountConcurrency {
    /// What Lambda keeps unreserved whatever is asked.
    pub fn unreserved_minimum(self) -> i32 {
        self.limit.min(UNRESERVED_FLOOR)
    }
}

/// A function whose reserved concurrency the plan sets or changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationChange {
    pub function: String,
    /// What the function reserves now (0 when it reserves nothing).
    pub reserved_now: i32,
    pub wanted: i32,
}

impl ReservationChange {
    /// How many more executions the change takes from the unreserved pool (negative: frees).
    fn taken(&self) -> i64 {
        i64::from(self.wanted) - i64::from(self.reserved_now)
    }
}

/// The reservations a plan sets (a function without one) or changes (an update of `reserved`).
pub fn reservation_changes(plan: &Plan) -> Vec<ReservationChange> {
    plan.changes
        .iter()
        .filter_map(|change| {
            let Resource::ReservedConcurrency { function, value } = change.resource() else {
                return None;
            };
            let reserved_now = match change {
                Change::Create(_) => 0,
                // The observed value comes from AWS as text; one that does not parse counts as
                // nothing reserved, which over-states what the change takes (the safe side).
                Change::Update { differences, .. } => differences
                    .iter()
                    .find(|(attribute, _, _)| attribute == "reserved")
                    .and_then(|(_, now, _)| now.parse().ok())
                    .unwrap_or(0),
            };
            Some(ReservationChange {
                function: function.clone(),
                reserved_now,
                wanted: *value,
            })
        })
        .collect()
}

/// How many more executions the changes reserve in all (0 or less: nothing to check).
pub fn additional_reserved(changes: &[ReservationChange]) -> i64 {
    changes.iter().map(ReservationChange::taken).sum()
}

/// Why the account cannot take the plan's reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyShortfall {
    pub account: AccountConcurrency,
    pub changes: Vec<ReservationChange>,
    /// Unreserved executions once the changes are made.
    pub unreserved_after: i64,
}

impl fmt::Display for ConcurrencyShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AccountConcurrency { limit, unreserved } = self.account;
        let minimum = self.account.unreserved_minimum();
        let needed: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.taken() != 0)
            .map(|c| format!("{} {} -> {}", c.function, c.reserved_now, c.wanted))
            .collect();
        write!(
            f,
            "Lambda cannot reserve the concurrency this deployment needs, nothing was changed: \
             the account's limit is {limit} concurrent executions, {unreserved} of them unreserved; \
             the deployment reserves {} more ({}), which would leave {} unreserved, and Lambda \
             keeps at least {minimum} unreserved",
            additional_reserved(&self.changes),
            needed.join(", "),
            self.unreserved_after,
        )?;
        if limit <= UNRESERVED_FLOOR {
            write!(
                f,
                " (a limit of {UNRESERVED_FLOOR} or less, such as a new account's 10, allows no \
                 reservation at all)"
            )?;
        }
        write!(
            f,
            ". Request an increase of the Lambda quota \"Concurrent executions\" in Service Quotas \
             for this region to at least {}, or lower the reserved concurrency of other functions \
             in this account and region.",
            // What is reserved already, what the deployment adds, and the floor left unreserved.
            i64::from(UNRESERVED_FLOOR)
                + (i64::from(limit) - i64::from(unreserved))
                + additional_reserved(&self.changes)
        )
    }
}

impl std::error::Error for ConcurrencyShortfall {}

/// `Err` when the changes would leave fewer unreserved executions than Lambda's minimum.
pub fn check_unreserved(
    account: AccountConcurrency,
    changes: &[ReservationChange],
) -> Result<(), ConcurrencyShortfall> {
    let additional = additional_reserved(changes);
    if additional <= 0 {
        return Ok(());
    }
    let unreserved_after = i64::from(account.unreserved) - additional;
    if unreserved_after >= i64::from(account.unreserved_minimum()) {
        return Ok(());
    }
    Err(ConcurrencyShortfall {
        account,
        changes: changes.to_vec(),
        unreserved_after,
    })
}

/// The account's concurrency, or why it could not be read (moto 5.2.5 does not implement
/// `GetAccountSettings`; a role may lack `lambda:GetAccountSettings`).
pub async fn read_account_concurrency(
    lambda: &aws_sdk_lambda::Client,
) -> Result<AccountConcurrency, String> {
    let settings = lambda
        .get_account_settings()
        .send()
        .await
        .map_err(|e| why_unreadable(&e))?;
    let limit = settings
        .account_limit()
        .ok_or("GetAccountSettings returned no AccountLimit")?;
    let unreserved = limit
        .unreserved_concurrent_executions()
        .ok_or("GetAccountSettings returned no UnreservedConcurrentExecutions")?;
    Ok(AccountConcurrency {
        limit: limit.concurrent_executions(),
        unreserved,
    })
}

/// One line for the operator: an AWS error by status and code; an endpoint that answers without
/// an AWS error (moto's 404 page) by status; anything else (no answer at all) in full.
fn why_unreadable(
    error: &aws_sdk_lambda::error::SdkError<
        aws_sdk_lambda::operation::get_account_settings::GetAccountSettingsError,
        aws_sdk_lambda::config::http::HttpResponse,
    >,
) -> String {
    use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match service.err().code() {
                Some(code) => format!("GetAccountSettings answered {status} {code}"),
                None => format!(
                    "GetAccountSettings answered {status} without an AWS error: the endpoint does not implement it"
                ),
            }
        }
        other => format!(
            "GetAccountSettings failed: {}",
            aws_sdk_lambda::error::DisplayErrorContext(other)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence_reserves(reserved_now: i32, wanted: i32) -> Vec<ReservationChange> {
        vec![ReservationChange {
            function: "keycloak-fence-fence".into(),
            reserved_now,
            wanted,
        }]
    }

    fn account(limit: i32, unreserved: i32) -> AccountConcurrency {
        AccountConcurrency { limit, unreserved }
    }

    /// What deploy reserves for the fence.
    const FENCE: i32 = super::super::plan::FENCE_RESERVED_CONCURRENCY;

    #[test]
    fn reservation_check_table() {
        // (case, account limit, unreserved now, reserved now, wanted, passes)
        let table = [
            (
                "default_account_reserves_the_fence_cap",
                1000,
                1000,
                0,
                FENCE,
                true,
            ),
            (
                "leaves_exactly_the_floor",
                1000,
                100 + FENCE,
                0,
                FENCE,
                true,
            ),
            ("one_below_the_floor", 1000, 99 + FENCE, 0, FENCE, false),
            (
                "new_account_limit_10_reserves_nothing",
                10,
                10,
                0,
                FENCE,
                false,
            ),
            ("limit_50_reserves_nothing", 50, 50, 0, FENCE, false),
            (
                "limit_of_floor_plus_cap_allows_it",
                100 + FENCE,
                100 + FENCE,
                0,
                FENCE,
                true,
            ),
            (
                "limit_one_less_does_not",
                99 + FENCE,
                99 + FENCE,
                0,
                FENCE,
                false,
            ),
            (
                "already_reserved_counts_as_taken",
                1000,
                100,
                FENCE,
                FENCE,
                true,
            ),
            // A deployment made when the fence reserved 1: the redeploy takes the difference.
            (
                "raising_from_one_takes_the_difference",
                1000,
                99 + FENCE,
                1,
                FENCE,
                true,
            ),
            (
                "raising_from_one_past_the_floor",
                1000,
                98 + FENCE,
                1,
                FENCE,
                false,
            ),
            ("raising_takes_only_the_difference", 1000, 102, 1, 3, true),
            ("raising_past_the_floor", 1000, 101, 1, 3, false),
            ("lowering_needs_nothing", 10, 0, 5, 1, true),
            (
                "others_reserved_most_of_the_limit",
                1000,
                50,
                0,
                FENCE,
                false,
            ),
        ];
        for (case, limit, unreserved, now, wanted, passes) in table {
            let result = check_unreserved(account(limit, unreserved), &fence_reserves(now, wanted));
            assert_eq!(result.is_ok(), passes, "{case}: {result:?}");
        }
    }

    #[test]
    fn new_account_message_says_limits_and_what_to_do() {
        let Err(shortfall) = check_unreserved(account(10, 10), &fence_reserves(0, FENCE)) else {
            panic!("a limit of 10 must refuse any reservation");
        };
        let message = shortfall.to_string();
        for part in [
            "limit is 10 concurrent executions",
            "10 of them unreserved",
            "reserves 10 more (keycloak-fence-fence 0 -> 10)",
            "would leave 0 unreserved",
            "at least 10 unreserved",
            "allows no reservation at all",
            "\"Concurrent executions\" in Service Quotas",
            "to at least 110",
            "lower the reserved concurrency of other functions",
            "nothing was changed",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
    }

    #[test]
    fn message_of_a_full_account_asks_for_the_limit_that_fits() {
        // 950 of 1000 reserved by other functions: a limit of 1060 leaves 100 once the fence
        // has its 10.
        let Err(shortfall) = check_unreserved(account(1000, 50), &fence_reserves(0, FENCE)) else {
            panic!("50 unreserved cannot give 10 away");
        };
        let message = shortfall.to_string();
        assert!(message.contains("at least 100 unreserved"), "{message}");
        assert!(message.contains("to at least 1060"), "{message}");
        assert!(!message.contains("allows no reservation"), "{message}");
    }

    #[test]
    fn plan_changes_become_reservation_changes() {
        let create = Change::Create(Resource::ReservedConcurrency {
            function: "a".into(),
            value: 1,
        });
        let raise = Change::Update {
            resource: Resource::ReservedConcurrency {
                function: "b".into(),
                value: 5,
            },
            differences: vec![("reserved".into(), "2".into(), "5".into())],
        };
        let other = Change::Create(Resource::FunctionUrl {
            function: "a".into(),
        });
        let plan = Plan {
            changes: vec![create, raise, other],
            ..Plan::default()
        };
        let changes = reservation_changes(&plan);
        assert_eq!(
            changes,
            vec![
                ReservationChange {
                    function: "a".into(),
                    reserved_now: 0,
                    wanted: 1
                },
                ReservationChange {
                    function: "b".into(),
                    reserved_now: 2,
                    wanted: 5
                },
            ]
        );
        assert_eq!(additional_reserved(&changes), 4);
    }
}
