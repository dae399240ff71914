//! The connections table's adapter (`matbakh_aws::live::LiveTable`) against moto's DynamoDB:
//! the same contract the in-memory fake keeps (sockets by user and by administrator, closed
//! sockets gone, a ticket redeemed once and not after it expired). Run through `scripts/test`.

use matbakh_app::ports::{Connection, Connections};
use matbakh_aws::live::LiveTable;
use matbakh_core::ids::UserId;
use time::{Duration, OffsetDateTime};

fn socket(id: &str, user: &UserId, admin: bool) -> Connection {
    Connection { id: id.into(), user: user.clone(), admin }
}

async fn table() -> LiveTable {
    let sdk = testkit::moto_sdk().await;
    LiveTable::new(&sdk, std::env::var("CONNECTIONS_TABLE").expect("CONNECTIONS_TABLE (scripts/test sets it)"))
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn sockets_are_found_by_user_and_by_administrator_and_forgotten_when_closed() {
    let t = table().await;
    let (alice, root) =
        (UserId::parse(&testkit::unique_user("alice")).unwrap(), UserId::parse(&testkit::unique_user("root")).unwrap());
    let until = OffsetDateTime::now_utc() + Duration::hours(2);
    let (a1, a2, r1) = (
        socket(&testkit::unique_user("a1"), &alice, false),
        socket(&testkit::unique_user("a2"), &alice, false),
        socket(&testkit::unique_user("r1"), &root, true),
    );
    for c in [&a1, &a2, &r1] {
        t.open(c, until).await.unwrap();
    }
    let mut mine = t.of_user(&alice).await.unwrap();
    mine.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(mine, want);
    assert!(t.of_admins().await.unwrap().contains(&r1), "an administrator's socket is among the admins'");
    assert_eq!(t.of_user(&root).await.unwrap(), vec![r1.clone()]);

    t.close(&a1).await.unwrap();
    t.close(&r1).await.unwrap();
    t.close(&r1).await.unwrap(); // twice is no error
    assert_eq!(t.of_user(&alice).await.unwrap(), vec![a2]);
    assert!(!t.of_admins().await.unwrap().contains(&r1));
    assert!(t.of_user(&root).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_ticket_is_redeemed_once_and_never_after_it_expired() {
    let t = table().await;
    let alice = UserId::parse(&testkit::unique_user("alice")).unwrap();
    let now = OffsetDateTime::now_utc();
    let (fresh, stale) = (testkit::unique_user("ticket"), testkit::unique_user("ticket"));
    t.issue_ticket(&fresh, &alice, now + Duration::seconds(30)).await.unwrap();
    t.issue_ticket(&stale, &alice, now + Duration::seconds(30)).await.unwrap();
    assert_eq!(t.redeem_ticket(&fresh, now).await.unwrap(), Some(alice.clone()));
    assert_eq!(t.redeem_ticket(&fresh, now).await.unwrap(), None, "used up");
    assert_eq!(t.redeem_ticket(&stale, now + Duration::seconds(30)).await.unwrap(), None, "expired");
    assert_eq!(t.redeem_ticket(&stale, now).await.unwrap(), None, "and gone with the expired try");
    assert_eq!(t.redeem_ticket("never-issued", now).await.unwrap(), None);
}
