//! Re-slicing on a real control plane while runners deliver real Mailman entries into an SMTP
//! sink: `out` goes from 4 slices to 8, then to 2. A watch on the slice Leases checks, at every
//! change, that no part of the hash space has two live owners; the sink checks that every
//! entry is delivered exactly once.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use mailqueue_contract::lease::live_holder;
use mailqueue_contract::slice::SliceId;
use support::smtp::Sink;
use support::{
    apply, deliveries, entries, eventually, expected_deliveries, mailman3_vectors, make_queue_dirs, queue_copies,
    spec_yaml, Setup,
};

/// Width of the hash space in the finest slices (256), so ranges of any layout compare.
const FINE: u32 = 256;

/// The fine hash range `[start, end)` a slice covers.
fn range(id: &SliceId) -> (u32, u32) {
    let width = FINE / id.slices.max(1);
    (id.index * width, (id.index + 1) * width)
}

/// Pairs of live Lease holders whose hash ranges overlap, as seen at `now`.
fn overlaps(leases: &BTreeMap<String, Lease>, now: jiff::Timestamp) -> Vec<String> {
    let live: Vec<(SliceId, String)> = leases
        .values()
        .filter_map(|l| {
            let holder = live_holder(l, now)?.to_owned();
            Some((SliceId::from_labels(l.metadata.labels.as_ref()?)?, holder))
        })
        .collect();
    let mut found = Vec::new();
    for (i, (a, ha)) in live.iter().enumerate() {
        for (b, hb) in live.iter().skip(i + 1) {
            let ((a0, a1), (b0, b1)) = (range(a), range(b));
            if a0 < b1 && b0 < a1 {
                found.push(format!("{} ({ha}) and {} ({hb})", a.object_name(), b.object_name()));
            }
        }
    }
    found
}

#[tokio::test]
async fn reslicing_never_gives_a_hash_two_owners_and_delivers_everything_once() {
    let setup = Setup::new("mq-reslice").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let all = mailman3_vectors();
    assert!(all.len() >= 30, "expected the full Mailman 3 vector set, found {}", all.len());
    // Three copies of every entry, so delivery spans the first change.
    queue_copies(&all, &qfiles.join("out"), 0..3);
    let sink = Sink::with_delay(Duration::from_millis(120)).await;
    let _operator = setup.operator("operator-reslice");

    // Every Lease change, checked the moment it is seen.
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let changes = Arc::new(Mutex::new(0usize));
    let leases_api: Api<Lease> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let watch = {
        let (violations, changes) = (violations.clone(), changes.clone());
        let config = watcher::Config::default().labels("mailqueue.dev/mailqueue=lists");
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, Lease> = BTreeMap::new();
            let mut stream = watcher::watcher(leases_api, config).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(l) | Event::InitApply(l)) => {
                        seen.insert(l.name_any(), l);
                    }
                    Ok(Event::Delete(l)) => {
                        seen.remove(&l.name_any());
                    }
                    Ok(Event::Init | Event::InitDone) | Err(_) => continue,
                }
                *changes.lock().expect("counter") += 1;
                let found = overlaps(&seen, jiff::Timestamp::now());
                violations.lock().expect("violations").extend(found);
            }
        })
    };

    apply(&setup, &spec_yaml("lists", 4, sink.port)).await;
    let delivered = || sink.deliveries().len();
    eventually("the first deliveries at 4 slices", || async { (delivered() >= 10).then_some(()) }).await;

    let live = |slices: i32| {
        let setup = &setup;
        async move {
            let s = setup.mailqueues().get("lists").await.ok()?.status?;
            let q = s.queues.first()?;
            (q.slices == slices && q.live_slices == slices).then_some(())
        }
    };
    apply(&setup, &spec_yaml("lists", 8, sink.port)).await;
    eventually("8 live slices", || live(8)).await;
    // A fresh wave, so the second change also meets a backlog however fast the first
    // one went (a quiet machine delivers the first wave before the 8 slices are live).
    queue_copies(&all, &qfiles.join("out"), 3..5);
    apply(&setup, &spec_yaml("lists", 2, sink.port)).await;
    eventually("2 live slices", || live(2)).await;

    eventually("the out queue to empty", || async {
        let out = qfiles.join("out");
        (entries(&out, ".pck").is_empty() && entries(&out, ".bak").is_empty()).then_some(())
    })
    .await;
    watch.abort();

    let violations = violations.lock().expect("violations").clone();
    assert!(violations.is_empty(), "hash ranges with two live owners: {violations:#?}");
    assert!(*changes.lock().expect("counter") > 14, "the Lease watch saw too few changes to prove anything");

    // Every entry reached each recipient exactly once.
    assert_eq!(deliveries(&sink), expected_deliveries(&all, 5), "(message, recipient) -> deliveries");
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
    assert!(entries(&qfiles.join("shunt"), ".pck").is_empty(), "entries were shunted");
}

/// The check itself: a live slice of 8 inside a live slice of 4 is caught, a released one is not.
#[test]
fn the_overlap_check_catches_two_live_owners_of_one_hash() {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let now = jiff::Timestamp::now();
    let lease = |index: u32, slices: u32, holder: &str| {
        let id = SliceId { mailqueue: "lists".into(), queue: "out".into(), index, slices };
        let mut l = Lease::default();
        l.metadata.name = Some(id.object_name());
        l.metadata.labels = Some(id.labels());
        l.spec = Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        });
        (id.object_name(), l)
    };
    let mut leases: BTreeMap<String, Lease> =
        [lease(1, 4, "a"), lease(3, 8, "b"), lease(4, 8, "c")].into_iter().collect();
    assert_eq!(overlaps(&leases, now), ["lists-out-1of4 (a) and lists-out-3of8 (b)"]);
    leases.insert(lease(1, 4, "").0, lease(1, 4, "").1);
    assert!(overlaps(&leases, now).is_empty());
}
