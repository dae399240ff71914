//! Holding each user to the budgets of the costly requests ([`matbakh_core::throttle`]): the
//! use cases that grant uploads, start exports, sign image URLs and restore archived files ask
//! [`admit`] before they write anything, so a refused request changes nothing.

use std::time::Duration;

use matbakh_core::ids::UserId;
use matbakh_core::throttle::{Budgets, Costly, Window};
use time::OffsetDateTime;

use crate::error::Error;
use crate::ports::Counters;

/// Counts one request of `user` of `kind` in the current window, or refuses it with
/// [`Error::TooMany`] when the window's budget is spent.
pub async fn admit(
    counters: &dyn Counters,
    budgets: &Budgets,
    now: OffsetDateTime,
    user: &UserId,
    kind: Costly,
) -> Result<(), Error> {
    let budget = budgets.of(kind);
    if budget.requests == 0 {
        return Ok(());
    }
    let window = Window::at(now, budget.window);
    let counter = format!("{}#{}", kind.as_str(), window.start);
    if counters.take(user, &counter, budget.requests, window.ends).await? {
        return Ok(());
    }
    let retry_after = window.retry_after(now);
    tracing::info!(kind = kind.as_str(), retry_after = retry_after.as_secs(), "over budget");
    Err(Error::TooMany {
        message: format!(
            "you have made {} {} requests in {}; try again in {} s",
            budget.requests,
            kind.as_str(),
            per(budget.window),
            retry_after.as_secs()
        )
        .into(),
        retry_after,
    })
}

fn per(window: Duration) -> String {
    match window.as_secs() {
        60 => "a minute".into(),
        3600 => "an hour".into(),
        86_400 => "a day".into(),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use matbakh_core::throttle::Budget;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::InMemory;

    const NOW: OffsetDateTime = datetime!(2026-12-05 14:30:42 UTC);

    fn budgets(requests: u64) -> Budgets {
        let b = Budget { requests, window: Duration::from_secs(60) };
        Budgets { upload_grants: b, exports: b, image_urls: b, restores: b, expedited_restores: b }
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_until_the_window_turns() {
        let counters = Arc::new(InMemory::default());
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let b = budgets(3);
        for _ in 0..3 {
            admit(&*counters, &b, NOW, &alice, Costly::UploadGrant).await.unwrap();
        }
        let refused = admit(&*counters, &b, NOW, &alice, Costly::UploadGrant).await.unwrap_err();
        match refused {
            Error::TooMany { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(18)),
            e => panic!("{e:?}"),
        }
        // refusals do not count: the same window still refuses, nothing more
        assert!(admit(&*counters, &b, NOW, &alice, Costly::UploadGrant).await.is_err());
        // another user, and another kind, have their own budgets
        admit(&*counters, &b, NOW, &bob, Costly::UploadGrant).await.unwrap();
        admit(&*counters, &b, NOW, &alice, Costly::Export).await.unwrap();
        // the next window starts afresh
        let later = NOW + Duration::from_secs(18);
        admit(&*counters, &b, later, &alice, Costly::UploadGrant).await.unwrap();
    }

    #[tokio::test]
    async fn a_budget_of_zero_is_no_budget() {
        let counters = Arc::new(InMemory::default());
        let alice = UserId::parse("alice").unwrap();
        for _ in 0..10 {
            admit(&*counters, &budgets(0), NOW, &alice, Costly::ImageUrls).await.unwrap();
        }
        assert_eq!(counters.counted(), 0);
    }
}
