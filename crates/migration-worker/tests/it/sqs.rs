//! The SQS path end to end on moto: `enqueue` sends a run's work to a queue, the
//! `migration-worker` handler copies it (files in batches; the large file as part messages
//! and a completion step the last part sends), a pause drops messages without losing work,
//! and a poison message ends in the DLQ after its receives. The pump here plays Lambda's event
//! source mapping (as `scripts/event_pump.py` does for `scripts/dev`), except that a failed
//! message is made visible again at once instead of after the visibility timeout.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use common::*;
use matbakh_aws::queue::Queue;
use matbakh_core::migration::{Control, RowStatus, RunId, RunState};
use migrate::verify::VerifyOptions;
use migration_worker::Worker;

/// A queue with a DLQ after `receives` receives; answers (queue URL, DLQ URL).
async fn queues(sdk: &aws_config::SdkConfig, receives: u32) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let name = format!("mig-{}", &uuid_like()[..24]);
    let dlq =
        sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url().unwrap().to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": receives}).to_string();
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "300")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    (url, dlq)
}

/// Feeds the queue to the handler until it is empty: deletes what succeeded, makes what
/// failed visible again. Answers how many deliveries failed.
async fn pump(worker: &Worker, sdk: &aws_config::SdkConfig, url: &str) -> usize {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut failed = 0;
    for _ in 0..200 {
        let out =
            sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        let messages = out.messages();
        if messages.is_empty() {
            return failed;
        }
        let response = migration_worker::handle(worker, testkit::as_delivered(messages), None).await;
        let bad: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        failed += bad.len();
        for m in messages {
            let receipt = m.receipt_handle().unwrap();
            if bad.contains(&m.message_id().unwrap()) {
                sqs.change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                sqs.delete_message().queue_url(url).receipt_handle(receipt).send().await.unwrap();
            }
        }
    }
    panic!("the queue did not drain in 200 rounds");
}

fn worker(sdk: &aws_config::SdkConfig, url: &str) -> Worker {
    Worker {
        ctx: context(sdk),
        sdk: sdk.clone(),
        queue: Queue::new(sdk, url),
        // Extended every 50 ms while a message is worked on: the heartbeat runs in every test.
        heartbeat: Duration::from_millis(50),
        extend_seconds: 300,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn enqueued_work_is_copied_by_the_worker_and_a_poison_message_ends_in_the_dlq() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    let (url, dlq) = queues(&sdk, 3).await;
    let t = photo_tree();
    let run = plan(&ctx, &t, &options(&format!("s3://{bucket}"), "platform", HashMap::new(), &t.url()))
        .await
        .unwrap()
        .run
        .unwrap();

    let queue = Queue::new(&sdk, &url);
    let sent = migrate::work::enqueue(&ctx, &run, &queue, &sdk).await.unwrap();
    // 7 single files (one plan batch: 64 MiB, 100 files) and the 16 MB photo in 4 parts of 5 MiB,
    // one part message (4 parts a message).
    assert_eq!((sent.files, sent.multipart_files, sent.parts, sent.messages), (7, 1, 4, 2), "{sent:?}");
    assert_eq!(ctx.run(&run).await.unwrap().state, RunState::Running);
    let poison = r#"{"kind":"files","run":"#;
    aws_sdk_sqs::Client::new(&sdk).send_message().queue_url(&url).message_body(poison).send().await.unwrap();

    let w = worker(&sdk, &url);
    let failed = pump(&w, &sdk, &url).await;
    assert_eq!(failed, 3, "the poison message failed on each of its 3 receives");
    assert_eq!(ctx.run(&run).await.unwrap().state, RunState::Done);
    let v = migrate::verify::verify(&ctx, &run, &VerifyOptions { deep: true, ..Default::default() }).await.unwrap();
    assert!(v.passed() && v.checked == 8, "{v:?}");
    let rows = ctx.ledger.rows(&RunId::parse(&run).unwrap()).await.unwrap();
    let sony = rows.iter().find(|r| r.entry.source.ends_with("sony.jpg")).unwrap();
    assert!(sony.upload_id.is_some() && sony.status == RowStatus::Copied, "{sony:?}");
    let status = migrate::control::status(&ctx, &run).await.unwrap();
    assert_eq!((status.copied_files, status.failed_files), (8, 0));
    // Copied by workers: the rate comes from the run's wall time, from first start to last update.
    assert!(status.active_seconds > 0.0 && status.bytes_per_second > 0.0, "{status:?}");

    let in_dlq = aws_sdk_sqs::Client::new(&sdk)
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = in_dlq.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, vec![poison]);
    // A second enqueue of a finished run sends nothing.
    assert_eq!(migrate::work::enqueue(&ctx, &run, &queue, &sdk).await.unwrap().messages, 0);
}

/// The photo tree planned into a new bucket under `prefix/`, its work enqueued, then paused;
/// with its queue and a worker (and the tree, whose folder goes when it is dropped).
struct Paused {
    _tree: Tree,
    sdk: aws_config::SdkConfig,
    ctx: migrate::Context,
    bucket: String,
    url: String,
    queue: Queue,
    run: String,
    w: Worker,
}

impl Paused {
    async fn new(prefix: &str) -> Paused {
        let sdk = moto().await;
        let ctx = context(&sdk);
        let bucket = bucket(&sdk, true).await;
        let (url, _) = queues(&sdk, 3).await;
        let t = photo_tree();
        let target = format!("s3://{bucket}/{prefix}");
        let run = plan(&ctx, &t, &options(&target, "keep", HashMap::new(), &t.url())).await.unwrap().run.unwrap();
        let queue = Queue::new(&sdk, &url);
        migrate::work::enqueue(&ctx, &run, &queue, &sdk).await.unwrap();
        migrate::control::apply(&ctx, &run, Control::Pause).await.unwrap();
        let w = worker(&sdk, &url);
        Paused { _tree: t, sdk, ctx, bucket, url, queue, run, w }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_paused_run_drops_its_messages_and_resume_plus_enqueue_finishes_it() {
    let Paused { _tree, sdk, ctx, bucket, url, queue, run, w } = Paused::new("q").await;
    assert_eq!(pump(&w, &sdk, &url).await, 0);
    assert_eq!(snapshot(&sdk, &bucket, "q/").await.len(), 0, "nothing copied while paused");
    let (report, _) = migrate::report::report(&ctx, &run).await.unwrap();
    assert_eq!(report.pending_files, 8);
    // Enqueue refuses a paused run; after resume it sends the pending work again, reusing the
    // multipart upload it started the first time.
    assert!(migrate::work::enqueue(&ctx, &run, &queue, &sdk).await.is_err());
    migrate::control::apply(&ctx, &run, Control::Resume).await.unwrap();
    let again = migrate::work::enqueue(&ctx, &run, &queue, &sdk).await.unwrap();
    assert_eq!((again.files, again.multipart_files), (7, 1));
    let uploads = s3(&sdk).list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    pump(&w, &sdk, &url).await;
    assert_eq!(ctx.run(&run).await.unwrap().state, RunState::Done);
    assert!(migrate::verify::verify(&ctx, &run, &VerifyOptions::default()).await.unwrap().passed());
}

/// Security review 20 (migration 3): the bucket's lifecycle aborts a multipart upload a day after
/// it began; a run paused overnight (or a backlog) found its large files' uploads gone and failed
/// them for good (`refused`, "deleted since plan"). Now the resume's `enqueue` starts a lapsed
/// upload again, and the messages of the old one are stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_large_files_upload_that_lapsed_while_paused_starts_again_on_resume() {
    let Paused { _tree, sdk, ctx, bucket, url, queue, run, w } = Paused::new("l").await;
    assert_eq!(pump(&w, &sdk, &url).await, 0, "paused: nothing copied");
    // A day later the lifecycle rule aborts the large file's upload.
    let rows = all_rows(&ctx, &run).await;
    let large = rows.iter().find(|r| r.upload_id.is_some()).expect("a multipart row");
    let lapsed = large.upload_id.clone().unwrap();
    s3(&sdk).abort_multipart_upload().bucket(&bucket).key(&large.entry.key).upload_id(&lapsed).send().await.unwrap();

    migrate::control::apply(&ctx, &run, Control::Resume).await.unwrap();
    let again = migrate::work::enqueue(&ctx, &run, &queue, &sdk).await.unwrap();
    assert_eq!(again.multipart_files, 1);
    pump(&w, &sdk, &url).await;
    let id = matbakh_core::migration::RunId::parse(&run).unwrap();
    let row = ctx.ledger.row(&id, large.entry.seq).await.unwrap().unwrap();
    assert_eq!(row.status, matbakh_core::migration::RowStatus::Copied, "{row:?}");
    assert_ne!(row.upload_id.as_deref(), Some(lapsed.as_str()), "a new upload");
    assert_eq!(ctx.run(&run).await.unwrap().state, RunState::Done);
    assert!(migrate::verify::verify(&ctx, &run, &VerifyOptions::default()).await.unwrap().passed());
}

/// The dashboard's resume: one `enqueue` message, which the worker turns into the run's work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_enqueue_message_hands_a_resumed_run_back_to_the_workers() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    let (url, _) = queues(&sdk, 3).await;
    let t = photo_tree();
    let run = plan(&ctx, &t, &options(&format!("s3://{bucket}/e"), "keep", HashMap::new(), &t.url()))
        .await
        .unwrap()
        .run
        .unwrap();
    let queue = Queue::new(&sdk, &url);
    let ask = || serde_json::to_string(&migrate::work::Work::Enqueue { run: run.clone() }).unwrap();
    let w = worker(&sdk, &url);

    // Asked while paused, the worker drops it: nothing is sent, nothing copied.
    migrate::control::apply(&ctx, &run, Control::Pause).await.unwrap();
    queue.send_all(&[ask()]).await.unwrap();
    assert_eq!(pump(&w, &sdk, &url).await, 0);
    assert_eq!(snapshot(&sdk, &bucket, "e/").await.len(), 0);
    assert_eq!(migrate::report::report(&ctx, &run).await.unwrap().0.pending_files, 8);

    migrate::control::apply(&ctx, &run, Control::Resume).await.unwrap();
    queue.send_all(&[ask()]).await.unwrap();
    assert_eq!(pump(&w, &sdk, &url).await, 0);
    assert_eq!(ctx.run(&run).await.unwrap().state, RunState::Done);
    assert_eq!(snapshot(&sdk, &bucket, "e/").await.len(), 8);
    assert!(migrate::verify::verify(&ctx, &run, &VerifyOptions::default()).await.unwrap().passed());
}

/// A ledger table of its own (as the template declares it): an erase's message concerns every
/// run in the ledger, and this test counts on knowing them all.
async fn ledger_table(sdk: &aws_config::SdkConfig) -> String {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let name = format!("ledger-{}", &uuid_like()[..24]);
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |n: &str, k: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(k).build().unwrap();
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    name
}

/// What an erase sends (`REDACT_ERASED_MESSAGE`): the worker sends a redact message for each
/// run of the ledger, and each rewrites its run's records of the erased user: a copied run's
/// rows, and a planned run's manifest, which its later `run` then takes as `erased` rows (their
/// files are not copied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_erases_message_rewrites_what_every_run_recorded_of_the_user() {
    let sdk = moto().await;
    let table = ledger_table(&sdk).await;
    let ctx = migrate::Context::new(&sdk, &table, std::sync::Arc::new(matbakh_core::clock::SystemClock))
        .with_page_rows(3)
        .with_files(&sdk, &testkit::env("TABLE_NAME"), erasures());
    let (url, _) = queues(&sdk, 3).await;
    let t = photo_tree();
    let erased = ErasedUser::new();
    let owners = erased.owners.clone();
    let (copied_into, planned_into) = (bucket(&sdk, true).await, bucket(&sdk, true).await);
    let copied = plan(&ctx, &t, &options(&format!("s3://{copied_into}"), "platform", owners.clone(), &t.url()))
        .await
        .unwrap()
        .run
        .unwrap();
    migrate::run::run(&ctx, &copied, source(&t), &migrate::run::RunOptions::default(), quiet()).await.unwrap();
    let planned = plan(&ctx, &t, &options(&format!("s3://{planned_into}"), "platform", owners, &t.url()))
        .await
        .unwrap()
        .run
        .unwrap();
    erased.mark(&sdk, &[]).await;

    let w = Worker { ctx: ctx.clone(), ..worker(&sdk, &url) };
    Queue::new(&sdk, &url).send_all(&[matbakh_core::migration::REDACT_ERASED_MESSAGE.to_owned()]).await.unwrap();
    assert_eq!(pump(&w, &sdk, &url).await, 0, "every message done at once");
    let names_them = |text: &str| erased.named_in(text);
    for (run, bucket) in [(&copied, &copied_into), (&planned, &planned_into)] {
        let rows = all_rows(&ctx, run).await;
        assert_eq!(rows.iter().filter(|r| r.is_erased()).count(), 3, "{run}");
        assert!(!rows.iter().any(|r| names_them(&format!("{r:?}"))), "{run}");
        let key = migrate::manifest_key(&RunId::parse(run).unwrap());
        let versions = snapshot(&sdk, bucket, &key).await;
        assert_eq!(versions.len(), 1, "{run}: the earlier manifest is removed");
        let manifest = s3(&sdk).get_object().bucket(bucket.as_str()).key(&key).send().await.unwrap();
        let manifest = String::from_utf8(manifest.body.collect().await.unwrap().to_vec()).unwrap();
        assert!(!names_them(&manifest), "{run}: {manifest}");
    }
    // The planned run, started now, copies the others' files and none of the erased user's.
    let summary =
        migrate::run::run(&ctx, &planned, source(&t), &migrate::run::RunOptions::default(), quiet()).await.unwrap();
    assert_eq!(summary.copied, 5, "{summary:?}");
    assert!(snapshot(&sdk, &planned_into, &format!("users/{}/", erased.id)).await.is_empty());
}
