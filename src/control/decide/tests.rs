//! Every branch of [`decide`](super::decide), without a cluster.
use super::*;
use crate::control::identity::JobName;

fn db() -> Database {
    Database {
        system_identifier: 42,
        oid: 16384,
        name: "db".into(),
    }
}

fn job(jid: &str, version: i32, state: &str) -> OverviewJob {
    OverviewJob {
        jid: jid.into(),
        name: db().job_name("p", version),
        state: state.to_string().into(),
        start_time: 0,
        end_time: 0,
        last_modification: 7,
    }
}

/// Test rows live as long as the test process (Tracked borrows its strings from the row).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn tracked(jid: Option<&str>, state: JobState) -> Tracked<'static> {
    Tracked {
        flink_job_id: jid.map(|j| leak(j.to_string())),
        job_name: Some(leak(db().job_name("p", 1))),
        foreign: false,
        state,
        failed_ago_ms: None,
        attempts: 0,
        modified_ms: Some(7),
        details_due: false,
    }
}

fn run(desired: Desired, t: Option<&Tracked>, cluster: &[OverviewJob]) -> Action {
    run_with(desired, t, cluster, false, true)
}

fn run_with(
    desired: Desired,
    t: Option<&Tracked>,
    cluster: &[OverviewJob],
    upgrade: bool,
    savepoint: bool,
) -> Action {
    let d = db();
    let index = ClusterIndex::new(cluster, &d);
    // As the worker does: whether the row's job name is this database's.
    let t = t.map(|t| Tracked {
        foreign: t.job_name.is_some_and(|n| !index.owns(n)),
        ..t.clone()
    });
    decide(Input {
        desired,
        tracked: t.as_ref(),
        cluster: &index,
        pipeline: "p",
        upgrade,
        stop_with_savepoint: savepoint,
    })
}

use Desired::{Running, Stopped};
use JobState as S;

#[test]
fn first_start_submits() {
    assert_eq!(run(Running, None, &[]), Action::Submit);
}

#[test]
fn running_job_is_left_alone_and_state_changes_are_observed() {
    let c = [job("a", 1, "RUNNING")];
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Running)), &c),
        Action::Nothing
    );
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Created)), &c),
        Action::Observe {
            jid: "a".into(),
            state: S::Running
        }
    );
}

#[test]
fn a_job_that_changed_in_flink_has_its_details_refreshed() {
    let mut c = [job("a", 1, "RUNNING")];
    c[0].last_modification = 8; // restarted since we last looked
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Running)), &c),
        Action::Refresh {
            jid: "a".into(),
            changed: true
        }
    );
    let mut t = tracked(Some("a"), S::Running);
    t.details_due = true;
    assert_eq!(
        run(Running, Some(&t), &[job("a", 1, "RUNNING")]),
        Action::Refresh {
            jid: "a".into(),
            changed: false
        }
    );
}

#[test]
fn untracked_live_job_is_adopted_never_duplicated() {
    let c = [job("x", 1, "RUNNING")];
    assert_eq!(
        run(Running, Some(&tracked(None, S::Submitting)), &c),
        Action::Adopt {
            jid: "x".into(),
            state: S::Running
        }
    );
    assert_eq!(
        run(Running, None, &c),
        Action::Adopt {
            jid: "x".into(),
            state: S::Running
        }
    );
    // Another pipeline's job, another database's, another instance's: not ours.
    let mut other = job("o", 1, "RUNNING");
    other.name = db().job_name("p2", 1);
    assert_eq!(run(Running, None, &[other.clone()]), Action::Submit);
    other.name = Database {
        name: "db_copy".into(),
        ..db()
    }
    .job_name("p", 1);
    assert_eq!(run(Running, None, &[other.clone()]), Action::Submit);
    other.name = Database {
        system_identifier: 43,
        ..db()
    }
    .job_name("p", 1);
    assert_eq!(run(Running, None, &[other]), Action::Submit);
}

#[test]
fn a_database_restored_under_the_same_name_adopts_its_jobs() {
    let mut j = job("x", 1, "RUNNING");
    j.name = Database { oid: 1, ..db() }.job_name("p", 1);
    assert_eq!(
        run(Running, None, &[j]),
        Action::Adopt {
            jid: "x".into(),
            state: S::Running
        }
    );
}

#[test]
fn job_rows_of_another_database_are_detached_and_never_touched() {
    let mut t = tracked(Some("a"), S::Running);
    t.job_name = Some(leak(
        Database {
            name: "original".into(),
            ..db()
        }
        .job_name("p", 1),
    ));
    let c = [OverviewJob {
        name: t.job_name.unwrap().to_string(),
        ..job("a", 1, "RUNNING")
    }];
    assert_eq!(
        run(Running, Some(&t), &c),
        Action::Detach {
            job_name: t.job_name.unwrap().to_string()
        }
    );
    assert!(matches!(run(Stopped, Some(&t), &c), Action::Detach { .. }));
    // Once detached, a start submits a job of its own; a stop touches nothing.
    t.state = S::Detached;
    assert_eq!(run(Running, Some(&t), &c), Action::Submit);
    assert_eq!(run(Stopped, Some(&t), &c), Action::Nothing);
    // Job names pg_flink did not write (an older format) are not ours either.
    t.state = S::Running;
    t.job_name = Some("pg_flink/db/p/v1");
    assert!(matches!(run(Running, Some(&t), &c), Action::Detach { .. }));
}

#[test]
fn vanished_job_is_lost_then_resubmitted() {
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Running)), &[]),
        Action::Lost
    );
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Lost)), &[]),
        Action::Submit
    );
}

#[test]
fn failed_job_is_recorded_and_not_resubmitted_in_a_loop() {
    let c = [job("a", 1, "FAILED")];
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Running)), &c),
        Action::Observe {
            jid: "a".into(),
            state: S::Failed
        }
    );
    assert_eq!(
        run(Running, Some(&tracked(Some("a"), S::Failed)), &c),
        Action::Nothing
    );
    assert_eq!(
        run_with(
            Running,
            Some(&tracked(Some("a"), S::Failed)),
            &c,
            true,
            true
        ),
        Action::Submit
    );
}

#[test]
fn failed_submission_backs_off() {
    let mut t = tracked(None, S::SubmitFailed);
    t.attempts = 1;
    t.failed_ago_ms = Some(500);
    assert_eq!(run(Running, Some(&t), &[]), Action::Nothing);
    t.failed_ago_ms = Some(2_500);
    assert_eq!(run(Running, Some(&t), &[]), Action::Submit);
    assert_eq!(backoff_ms(1), 2_000);
    assert_eq!(backoff_ms(3), 8_000);
    assert_eq!(backoff_ms(30), 32_000);
}

#[test]
fn interrupted_submission_is_retried_only_without_a_live_job() {
    assert_eq!(
        run(Running, Some(&tracked(None, S::Submitting)), &[]),
        Action::Submit
    );
}

#[test]
fn start_after_a_stop_submits_again() {
    let stopped = tracked(Some("a"), S::Stopped);
    assert_eq!(
        run(Running, Some(&stopped), &[job("a", 1, "FINISHED")]),
        Action::Submit
    );
    assert_eq!(run(Running, Some(&stopped), &[]), Action::Submit);
}

#[test]
fn stop_begins_then_continues_across_ticks_until_flink_reports_the_end() {
    let c = [job("a", 1, "RUNNING")];
    assert_eq!(
        run(Stopped, Some(&tracked(Some("a"), S::Running)), &c),
        Action::Stop {
            jid: "a".into(),
            savepoint: true
        }
    );
    assert_eq!(
        run_with(Stopped, None, &c, false, false),
        Action::Stop {
            jid: "a".into(),
            savepoint: false
        }
    );
    let stopping = tracked(Some("a"), S::Stopping);
    assert_eq!(
        run(Stopped, Some(&stopping), &c),
        Action::ContinueStop {
            jid: Some("a".into()),
            live: true
        }
    );
    assert_eq!(
        run(Stopped, Some(&stopping), &[job("a", 1, "CANCELED")]),
        Action::ContinueStop {
            jid: Some("a".into()),
            live: false
        }
    );
    // Even when the user wants it running again, the stop finishes first.
    assert_eq!(
        run(Running, Some(&stopping), &c),
        Action::ContinueStop {
            jid: Some("a".into()),
            live: true
        }
    );
    assert_eq!(
        run(
            Stopped,
            Some(&tracked(Some("a"), S::Stopped)),
            &[job("a", 1, "FINISHED")]
        ),
        Action::Nothing
    );
}

#[test]
fn a_restart_stops_with_a_savepoint_then_submits() {
    let c = [job("a", 1, "RUNNING")];
    assert_eq!(
        run_with(
            Running,
            Some(&tracked(Some("a"), S::Running)),
            &c,
            true,
            true
        ),
        Action::Stop {
            jid: "a".into(),
            savepoint: true
        }
    );
    assert_eq!(
        run_with(
            Running,
            Some(&tracked(Some("a"), S::Stopped)),
            &[job("a", 1, "FINISHED")],
            true,
            true
        ),
        Action::Submit
    );
}

#[test]
fn a_failed_savepoint_or_nothing_stop_leaves_the_job_alone() {
    let c = [job("a", 1, "RUNNING")];
    let t = tracked(Some("a"), S::StopFailed);
    assert_eq!(run(Stopped, Some(&t), &c), Action::Nothing);
    assert_eq!(run_with(Running, Some(&t), &c, true, true), Action::Nothing);
}

#[test]
fn orphans_are_live_jobs_of_this_database_without_a_pipeline() {
    let mut other_db = job("z", 1, "RUNNING");
    other_db.name = Database {
        name: "x".into(),
        ..db()
    }
    .job_name("gone", 1);
    let mut gone = job("g", 1, "RUNNING");
    gone.name = db().job_name("gone", 2);
    let mut ended = job("e", 1, "CANCELED");
    ended.name = db().job_name("gone", 1);
    let c = [job("a", 1, "RUNNING"), other_db, gone, ended];
    let d = db();
    let index = ClusterIndex::new(&c, &d);
    let found = index.orphans(&["p"].into_iter().collect());
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1.jid.as_str()), ("gone", "g"));
    assert_eq!(index.live("gone").len(), 1);
    assert_eq!(index.live("p").len(), 1);
    assert!(index.job("e").is_some(), "ended jobs are found by id");
    assert!(index.live("nope").is_empty());
}

/// The index answers exactly what a scan of the listing answers, for many jobs in any order.
#[test]
fn the_cluster_index_agrees_with_a_scan() {
    let d = db();
    let states = [
        "RUNNING",
        "CANCELED",
        "FAILED",
        "RESTARTING",
        "FINISHED",
        "CREATED",
    ];
    let mut c = Vec::new();
    for i in 0..600u32 {
        let mut j = job(&format!("j{i}"), 1, states[(i as usize * 7) % states.len()]);
        j.name = d.job_name(&format!("p{}", (i * 13) % 97), 1 + (i % 3) as i32);
        if i % 11 == 0 {
            j.name = format!("not ours {i}");
        }
        c.push(j);
    }
    let index = ClusterIndex::new(&c, &d);
    for p in 0..100u32 {
        let name = format!("p{p}");
        let scan: Vec<&str> = c
            .iter()
            .filter(|j| {
                !is_terminal_name(&j.state)
                    && JobName::parse(&j.name).is_some_and(|n| d.owns(&n) && n.pipeline == name)
            })
            .map(|j| j.jid.as_str())
            .collect();
        let got: Vec<&str> = index
            .live(&name)
            .iter()
            .map(|(_, j)| j.jid.as_str())
            .collect();
        assert_eq!(got, scan, "pipeline {name}");
    }
}
