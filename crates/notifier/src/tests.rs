//! The handler on stream batches shaped as Lambda delivers them, over the in-memory ports.

use std::sync::Arc;
use std::time::Duration;

use matbakh_app::fakes::{InMemoryLive, InMemoryObjects, delivery};
use matbakh_app::live::{Entry, Live};
use matbakh_app::ports::{Connection, Outbox};
use matbakh_core::clock::{Clock, FixedClock};
use matbakh_core::ids::UserId;
use matbakh_core::live::Message;
use serde_json::{Value, json};

use super::*;

const FILE_ID: &str = "0192f3a0-0000-7000-8000-000000000001";

fn live(fakes: &Arc<InMemoryLive>) -> Live {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(time::macros::datetime!(2026-12-05 12:00 UTC)));
    Live {
        connections: fakes.clone(),
        push: fakes.clone(),
        outbox: Some(fakes.clone() as Arc<dyn Outbox>),
        delivery: delivery(Arc::new(InMemoryObjects::new()), clock),
        restore_window: Duration::from_secs(86_400),
        admins: Arc::new(["root".to_owned()].into()),
    }
}

async fn open(fakes: &Arc<InMemoryLive>, id: &str, user: &str, admin: bool) {
    let c = Connection { id: id.into(), user: UserId::parse(user).unwrap(), admin };
    let entry = Entry {
        connections: fakes.clone(),
        clock: Arc::new(FixedClock(time::macros::datetime!(2026-12-05 12:00 UTC))),
    };
    entry.opened(&c).await.unwrap();
}

/// A file row's image as the table holds it.
fn file_row(status: &str, pending: bool) -> Value {
    let mut row = json!({
        "pk": {"S": format!("FILE#{FILE_ID}")}, "sk": {"S": "FILE"},
        "fileId": {"S": FILE_ID}, "owner": {"S": "alice"},
        "key": {"S": format!("users/alice/{FILE_ID}/menu.pdf")}, "filename": {"S": "menu.pdf"},
        "contentType": {"S": "application/pdf"}, "size": {"N": "2048"}, "status": {"S": status},
        "createdAt": {"S": "2026-12-05T11:59:00.000Z"}, "visibility": {"S": "private"}
    });
    if pending {
        row["pendingUntil"] = json!({"N": "1764939600"});
    }
    row
}

fn run_row(copied: u64) -> Value {
    json!({
        "pk": {"S": "RUNS"}, "sk": {"S": "RUN#r1"}, "id": {"S": "r1"}, "state": {"S": "RUNNING"},
        "source": {"S": "file:///legacy"}, "target": {"S": "s3://files/users"}, "rule": {"S": "default"},
        "createdAt": {"S": "2026-12-05T11:00:00.000Z"}, "totalFiles": {"N": "10"}, "totalBytes": {"N": "1000"},
        "copiedFiles": {"N": copied.to_string()}, "copiedBytes": {"N": (copied * 100).to_string()},
        "manifestKey": {"S": "migration/r1/manifest.jsonl"}, "settings": {"S": "{}"}
    })
}

fn record(n: u32, old: Option<Value>, new: Option<Value>) -> Value {
    let keys = new.as_ref().or(old.as_ref()).map(|i| json!({"pk": i["pk"], "sk": i["sk"]})).unwrap();
    let mut d = json!({"ApproximateCreationDateTime": 1_764_936_000.0 + f64::from(n), "Keys": keys,
                       "SequenceNumber": format!("{}", 1000 + n), "StreamViewType": "NEW_AND_OLD_IMAGES"});
    if let Some(o) = old {
        d["OldImage"] = o;
    }
    if let Some(i) = new {
        d["NewImage"] = i;
    }
    json!({"eventID": format!("ev{n}"), "eventName": "MODIFY", "eventSource": "aws:dynamodb", "dynamodb": d})
}

fn messages(fakes: &InMemoryLive, socket: &str) -> Vec<Message> {
    fakes.pushed_to(socket).iter().map(|b| serde_json::from_str(b).unwrap()).collect()
}

#[tokio::test]
async fn a_batch_tells_owners_their_files_and_admins_one_progress_per_run() {
    let fakes = Arc::new(InMemoryLive::default());
    let live = live(&fakes);
    open(&fakes, "alice-tab", "alice", false).await;
    open(&fakes, "bob-tab", "bob", false).await;
    open(&fakes, "ops", "root", true).await;
    let event = json!({"Records": [
        record(1, Some(file_row("PENDING", true)), Some(file_row("PENDING", false))),
        record(2, Some(run_row(1)), Some(run_row(2))),
        record(3, Some(file_row("PENDING", false)), Some(file_row("READY", false))),
        record(4, Some(run_row(2)), Some(run_row(3))),
        record(5, None, Some(json!({"pk": {"S": format!("FILE#{FILE_ID}")}, "sk": {"S": "TAG#menu"}}))),
        record(6, Some(run_row(3)), Some(run_row(4))),
    ]});
    let answer = handle(&live, event).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));

    let alice = messages(&fakes, "alice-tab");
    let kinds: Vec<&str> = alice.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["upload.settled", "file.ready"]);
    assert_eq!(alice[1].data["fileId"], FILE_ID);
    assert_eq!(alice[1].at, "2025-12-05T12:00:03.000Z", "when the write was made");
    assert!(messages(&fakes, "bob-tab").is_empty());

    let ops = messages(&fakes, "ops");
    assert_eq!(ops.len(), 1, "one progress message for the run's three updates: {ops:?}");
    assert_eq!((ops[0].kind.as_str(), ops[0].data["copiedFiles"].as_u64()), ("migration.progress", Some(4)));
    assert_eq!(ops[0].user, None);
    assert_eq!(fakes.queued().len(), 2, "the webhooks hear of alice's file, not of the migration");
}

/// An erase closes the account's usage item (`closedAt`): the user's sockets are told
/// `account.erased` and closed, the webhooks hear of it; the counters' other writes are no news.
#[tokio::test]
async fn an_erase_closing_the_account_tells_its_sockets_and_the_backend_then_closes_them() {
    let fakes = Arc::new(InMemoryLive::default());
    let live = live(&fakes);
    open(&fakes, "alice-tab", "alice", false).await;
    open(&fakes, "bob-tab", "bob", false).await;
    let usage = |extra: Value| {
        let mut item = json!({"pk": {"S": "USER#alice"}, "sk": {"S": "USAGE"}, "charged": {"N": "0"}});
        item.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        item
    };
    let event = json!({"Records": [
        record(1, Some(usage(json!({}))), Some(usage(json!({"charged": {"N": "10"}})))),
        record(2, Some(usage(json!({}))), Some(usage(json!({"closedAt": {"N": "1764936000"}})))),
    ]});
    assert_eq!(handle(&live, event).await, json!({"batchItemFailures": []}));
    let told = messages(&fakes, "alice-tab");
    assert_eq!(told.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(), ["account.erased"]);
    assert_eq!(told[0].data, json!({"erasedAt": "2025-12-05T12:00:00.000Z"}));
    assert_eq!(fakes.queued().len(), 1);
    assert_eq!(*fakes.disconnected.lock().unwrap(), ["alice-tab"]);
    assert!(!fakes.is_open("alice-tab") && fakes.is_open("bob-tab"));
    assert!(messages(&fakes, "bob-tab").is_empty());
}

fn bobs(row: Value) -> Value {
    let mut row = row;
    let id = "0192f3a0-0000-7000-8000-000000000002";
    row["pk"] = json!({"S": format!("FILE#{id}")});
    row["fileId"] = json!({"S": id});
    row["owner"] = json!({"S": "bob"});
    row["key"] = json!({"S": format!("users/bob/{id}/menu.pdf")});
    row
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_left_out_and_one_that_may_pass_is_reported() {
    let fakes = Arc::new(InMemoryLive::default());
    let live = live(&fakes);
    open(&fakes, "alice-tab", "alice", false).await;
    open(&fakes, "bob-tab", "bob", false).await;
    let broken = json!({"pk": {"S": format!("FILE#{FILE_ID}")}, "sk": {"S": "FILE"}, "status": {"S": "READY"}});
    let event = json!({"Records": [
        record(1, Some(file_row("PENDING", true)), Some(file_row("PENDING", false))),
        record(2, Some(file_row("PENDING", false)), Some(broken)),
        record(3, Some(file_row("READY", false)), Some(file_row("DELETED", false))),
        record(4, Some(bobs(file_row("PENDING", false))), Some(bobs(file_row("READY", false)))),
    ]});
    let answer = handle(&live, event).await;
    // Review 27: reported, an unreadable record held the shard back for every retry, and the
    // records after it were told again each time; it is left out (logged, counted) instead.
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let kinds = |socket| messages(&fakes, socket).iter().map(|m| m.kind.as_str().to_owned()).collect::<Vec<_>>();
    // The unreadable record is its own: alice's others are told in order, bob's too.
    assert_eq!(kinds("alice-tab"), ["upload.settled", "file.deleted"]);
    assert_eq!(kinds("bob-tab"), ["file.ready"]);

    // The webhook queue down (a failure that may pass): a user's records stop at the first,
    // before any socket hears it, and the earliest is reported: the stream hands it and what
    // follows it over again (some then told twice, with the same ids).
    *fakes.outbox_down.lock().unwrap() = true;
    let event = json!({"Records": [
        record(5, Some(file_row("DELETED", false)), Some(file_row("READY", false))),
        record(6, Some(file_row("READY", false)), Some(file_row("DELETED", false))),
    ]});
    assert_eq!(handle(&live, event).await, json!({"batchItemFailures": [{"itemIdentifier": "1005"}]}));
    assert_eq!(kinds("alice-tab").len(), 2, "nothing more was pushed");
}

/// A file row's change that leaves a large public original (copied in parts) public and READY
/// without a current copy asks the thumbnailer for it, whoever wrote it: made public, processed
/// public, brought back, renamed (the copy's download name), restored out of the archive (the
/// thumbnailer skips a copy that stayed current). Any other change of such a file (tags) asks
/// only while no copy is there: an ask lost on the way is made good by the next change. A small
/// original, a private or unfinished file ask nothing.
#[tokio::test]
async fn a_change_leaving_a_large_public_original_without_its_copy_asks_the_thumbnailer() {
    let fakes = Arc::new(InMemoryLive::default());
    let objects = Arc::new(InMemoryObjects::new());
    let asked = Arc::new(matbakh_app::fakes::CopyRequests::default());
    let mut live = live(&fakes);
    live.delivery = matbakh_app::delivery::Delivery {
        cdn: Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None)),
        later: Some(asked.clone()),
        ..delivery(objects.clone(), Arc::new(FixedClock(time::macros::datetime!(2026-12-05 12:00 UTC))))
    };
    let row = |status: &str, visibility: &str, size: u64, name: &str| {
        let mut row = file_row(status, false);
        row["visibility"] = json!({"S": visibility});
        row["size"] = json!({"N": size.to_string()});
        row["filename"] = json!({"S": name});
        row["contentType"] = json!({"S": "video/mp4"});
        row
    };
    let large = 2 << 30;
    let tagged = || {
        let mut r = row("READY", "public", large, "a.mp4");
        r["tags"] = json!({"SS": ["rushes"]});
        (row("READY", "public", large, "a.mp4"), r)
    };
    let mut n = 0;
    let mut asks = |old: Value, new: Value| {
        n += 1;
        let (live, asked) = (&live, asked.clone());
        async move {
            let before = asked.sent().len();
            let event = json!({"Records": [record(n, Some(old), Some(new))]});
            assert_eq!(handle(live, event).await, json!({"batchItemFailures": []}));
            let sent = asked.sent()[before..].to_vec();
            assert!(sent.iter().all(|id| id.to_string() == FILE_ID), "{sent:?}");
            sent.len()
        }
    };
    let cases = [
        ("made public", row("READY", "private", large, "a.mp4"), row("READY", "public", large, "a.mp4"), 1),
        ("processed public", row("PENDING", "public", large, "a.mp4"), row("READY", "public", large, "a.mp4"), 1),
        ("brought back", row("DELETED", "public", large, "a.mp4"), row("READY", "public", large, "a.mp4"), 1),
        ("renamed", row("READY", "public", large, "a.mp4"), row("READY", "public", large, "b.mp4"), 1),
        ("restored", row("RESTORING", "public", large, "a.mp4"), row("READY", "public", large, "a.mp4"), 1),
        ("tagged, no copy there", tagged().0, tagged().1, 1),
        ("small", row("READY", "private", 5 << 20, "a.mp4"), row("READY", "public", 5 << 20, "a.mp4"), 0),
        ("private", row("PENDING", "private", large, "a.mp4"), row("READY", "private", large, "a.mp4"), 0),
        ("unfinished", row("READY", "private", large, "a.mp4"), row("PENDING", "public", large, "a.mp4"), 0),
    ];
    for (case, old, new, expected) in cases {
        assert_eq!(asks(old, new).await, expected, "{case}");
    }
    // With the copy there, a change of tags asks nothing (it would copy gigabytes again).
    let key = matbakh_core::ids::ObjectKey::from_stored(format!("users/alice/{FILE_ID}/menu.pdf"));
    objects.put(&key.public_copy().unwrap(), 16);
    let (old, new) = tagged();
    assert_eq!(asks(old, new).await, 0, "tagged, the copy there");
}

/// The thumbnailer queue refusing an ask keeps no message from the owner's sockets and webhooks:
/// the record is told first, then reported (the stream hands it over again, told again with
/// the same ids).
#[tokio::test]
async fn an_ask_that_fails_is_retried_after_the_record_was_told() {
    struct Down;
    #[async_trait::async_trait]
    impl matbakh_app::ports::CopyLater for Down {
        async fn copy_public_original(&self, _: matbakh_core::ids::FileId) -> matbakh_app::ports::PortResult<()> {
            Err(matbakh_app::ports::PortError::Unavailable { operation: "SendMessage", message: "throttled".into() })
        }
    }
    let fakes = Arc::new(InMemoryLive::default());
    let mut live = live(&fakes);
    live.delivery = matbakh_app::delivery::Delivery {
        cdn: Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None)),
        later: Some(Arc::new(Down)),
        ..live.delivery
    };
    open(&fakes, "alice-tab", "alice", false).await;
    let row = |status: &str| {
        let mut row = file_row(status, false);
        row["visibility"] = json!({"S": "public"});
        row["size"] = json!({"N": (2u64 << 30).to_string()});
        row
    };
    let event = json!({"Records": [record(1, Some(row("PENDING")), Some(row("READY")))]});
    assert_eq!(handle(&live, event).await, json!({"batchItemFailures": [{"itemIdentifier": "1001"}]}));
    let kinds: Vec<String> = messages(&fakes, "alice-tab").iter().map(|m| m.kind.as_str().to_owned()).collect();
    assert_eq!(kinds, ["file.ready"]);
    assert_eq!(fakes.queued().len(), 1, "the webhook");
}
