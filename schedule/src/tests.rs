//! Table-driven tests of the schedule policy.

use std::collections::{BTreeMap, BTreeSet};

use ctrflow_schemas::{Domain, EventDate, ModelKind, ModelVersion, Parents};

use crate::*;

fn d(s: &str) -> EventDate {
    s.parse().expect("date")
}

fn v(s: &str) -> ModelVersion {
    ModelVersion::for_date(d(s))
}

/// Both landing tables closed from `first` to `last`.
fn closed(first: &str, last: &str) -> BTreeMap<Domain, BTreeSet<EventDate>> {
    Domain::ALL
        .iter()
        .map(|&dom| (dom, d(first).range_inclusive(d(last)).collect()))
        .collect()
}

fn published(
    model: ModelKind,
    date: &str,
    window: (&str, &str),
    parents: Parents,
    accepted: bool,
) -> PublishedModel {
    PublishedModel {
        model,
        version: v(date),
        date: d(date),
        window: Some((d(window.0), d(window.1))),
        parents,
        accepted,
    }
}

fn config() -> ScheduleConfig {
    ScheduleConfig::default()
}

fn run(date: &str, state: &StoreState) -> Plan {
    plan(d(date), &config(), state, PlanOptions::default()).expect("plan")
}

#[test]
fn the_first_day_runs_everything_fresh_on_the_days_there_are() {
    let state = StoreState {
        closed: closed("2024-01-01", "2024-01-10"),
        ..StoreState::default()
    };
    let p = run("2024-01-08", &state);
    for kind in ModelKind::ALL {
        let job = p.job(kind);
        assert_eq!(job.action, JobAction::Run, "{kind}");
        assert_eq!(job.start, Start::Fresh, "{kind}");
        assert_eq!(job.parents, Parents::default(), "{kind}");
        assert_eq!(job.eval_day, Some(d("2024-01-08")));
        assert_eq!(job.version, v("2024-01-08"));
    }
    // TPM: 180-day horizon, only 7 closed days, 173 missing ones reported.
    let tpm = p.job(ModelKind::Tpm);
    assert_eq!(tpm.window, Some((d("2023-07-12"), d("2024-01-07"))));
    assert_eq!(tpm.train_days.len(), 7);
    assert_eq!(tpm.missing_days.len(), 173);
    assert_eq!(tpm.domain, Domain::Natural);
    // A-CTR: yesterday only, on ads.
    let actr = p.job(ModelKind::Actr);
    assert_eq!(actr.window, Some((d("2024-01-07"), d("2024-01-07"))));
    assert_eq!(actr.train_days, vec![d("2024-01-07")]);
    assert_eq!(actr.domain, Domain::Ad);
    // The day before any data: nothing to train on.
    let p = run("2024-01-01", &state);
    for job in &p.jobs {
        assert!(matches!(&job.action, JobAction::Skip { reason } if reason.contains("no closed")));
        assert_eq!(job.window, None);
    }
}

#[test]
fn cadences_decide_who_is_due() {
    let mut state = StoreState {
        closed: closed("2023-01-01", "2024-12-31"),
        ..StoreState::default()
    };
    state.published.push(published(
        ModelKind::Tpm,
        "2024-01-01",
        ("2023-07-05", "2023-12-31"),
        Parents::default(),
        true,
    ));
    state.published.push(published(
        ModelKind::Cpm,
        "2024-01-01",
        ("2023-12-02", "2023-12-31"),
        Parents::default(),
        true,
    ));
    // (date, TPM due?, CPM due?, next TPM, next CPM)
    let table = [
        ("2024-01-02", false, false),
        ("2024-01-07", false, false),
        ("2024-01-08", false, true),
        ("2024-01-09", false, true),
        ("2024-01-30", false, true),
        ("2024-01-31", true, true),
        ("2024-03-01", true, true),
    ];
    for (date, tpm_due, cpm_due) in table {
        let p = run(date, &state);
        let due = |k| p.job(k).action == JobAction::Run;
        assert_eq!(due(ModelKind::Tpm), tpm_due, "TPM on {date}");
        assert_eq!(due(ModelKind::Cpm), cpm_due, "CPM on {date}");
        if !tpm_due {
            assert_eq!(
                p.job(ModelKind::Tpm).action,
                JobAction::NotDue {
                    next_due: d("2024-01-31")
                }
            );
        }
        if !cpm_due {
            assert_eq!(
                p.job(ModelKind::Cpm).action,
                JobAction::NotDue {
                    next_due: d("2024-01-08")
                }
            );
        }
        assert_eq!(
            p.job(ModelKind::Actr).action,
            JobAction::Run,
            "A-CTR is daily"
        );
    }
}

/// TPM d0101; CPM d0101 (tpm d0101); A-CTR d0102 from CPM d0101, accepted and live.
fn running_state() -> StoreState {
    let mut state = StoreState {
        closed: closed("2023-06-01", "2024-03-31"),
        ..StoreState::default()
    };
    state.published.push(published(
        ModelKind::Tpm,
        "2024-01-01",
        ("2023-07-05", "2023-12-31"),
        Parents::default(),
        true,
    ));
    state.published.push(published(
        ModelKind::Cpm,
        "2024-01-01",
        ("2023-12-02", "2023-12-31"),
        Parents {
            tpm: vec![],
            ..Parents::default()
        },
        true,
    ));
    state.published.push(published(
        ModelKind::Actr,
        "2024-01-02",
        ("2024-01-01", "2024-01-01"),
        Parents {
            tpm: vec![v("2024-01-01")],
            cpm: Some(v("2024-01-01")),
            previous: None,
        },
        true,
    ));
    state.latest.insert(ModelKind::Actr, v("2024-01-02"));
    state
}

#[test]
fn actr_continues_until_a_newer_cpm_is_published_and_never_waits_for_one() {
    let mut state = running_state();
    let p = run("2024-01-03", &state);
    let actr = p.job(ModelKind::Actr);
    assert_eq!(actr.start, Start::Continue(v("2024-01-02")));
    assert_eq!(actr.parents.previous, Some(v("2024-01-02")));
    assert_eq!(actr.parents.cpm, Some(v("2024-01-01")));
    assert_eq!(actr.parents.tpm, vec![v("2024-01-01")]);
    assert_eq!(actr.window, Some((d("2024-01-02"), d("2024-01-02"))));

    // On 01-08 CPM is due; A-CTR does not wait for it ...
    state.published.push(published(
        ModelKind::Actr,
        "2024-01-07",
        ("2024-01-06", "2024-01-06"),
        Parents {
            tpm: vec![v("2024-01-01")],
            cpm: Some(v("2024-01-01")),
            previous: Some(v("2024-01-02")),
        },
        true,
    ));
    state.latest.insert(ModelKind::Actr, v("2024-01-07"));
    let p = run("2024-01-08", &state);
    assert_eq!(p.job(ModelKind::Cpm).action, JobAction::Run);
    assert_eq!(
        p.job(ModelKind::Actr).start,
        Start::Continue(v("2024-01-07"))
    );
    // ... unless asked to.
    let waited = plan(
        d("2024-01-08"),
        &config(),
        &state,
        PlanOptions {
            wait_for_parents: true,
            ..PlanOptions::default()
        },
    )
    .expect("plan");
    let actr = waited.job(ModelKind::Actr);
    assert_eq!(actr.start, Start::FromCpm(v("2024-01-08")));
    assert_eq!(actr.parents.cpm, Some(v("2024-01-08")));
    assert_eq!(actr.parents.previous, None);
    assert_eq!(actr.window, Some((d("2024-01-07"), d("2024-01-07"))));

    // Once CPM d0108 is published, the next day re-initialises from it.
    state.published.push(published(
        ModelKind::Cpm,
        "2024-01-08",
        ("2023-12-09", "2024-01-07"),
        Parents::default(),
        true,
    ));
    let p = run("2024-01-09", &state);
    assert_eq!(
        p.job(ModelKind::Actr).start,
        Start::FromCpm(v("2024-01-08"))
    );
}

#[test]
fn a_rejected_actr_is_never_continued_and_a_rollback_is_followed() {
    let mut state = running_state();
    // d0103 rejected: LATEST stays d0102.
    state.published.push(published(
        ModelKind::Actr,
        "2024-01-03",
        ("2024-01-02", "2024-01-02"),
        Parents {
            tpm: vec![v("2024-01-01")],
            cpm: Some(v("2024-01-01")),
            previous: Some(v("2024-01-02")),
        },
        false,
    ));
    let p = run("2024-01-04", &state);
    let actr = p.job(ModelKind::Actr);
    assert_eq!(actr.start, Start::Continue(v("2024-01-02")));
    // The window is yesterday (horizon 1) ...
    assert_eq!(actr.window, Some((d("2024-01-03"), d("2024-01-03"))));
    // ... and with a longer horizon the rejected day's data is trained on again, from the day
    // after d0102's window.
    let catch_up = ScheduleConfig {
        actr: ModelSchedule::every(7, 1),
        ..config()
    };
    let p = plan(d("2024-01-04"), &catch_up, &state, PlanOptions::default()).expect("plan");
    assert_eq!(
        p.job(ModelKind::Actr).window,
        Some((d("2024-01-02"), d("2024-01-03")))
    );
    // Without a LATEST (e.g. lost), the newest accepted one is used, never the rejected one.
    state.latest.clear();
    assert_eq!(
        run("2024-01-04", &state).job(ModelKind::Actr).start,
        Start::Continue(v("2024-01-02"))
    );
    // An operator rolled LATEST back to an older accepted version: that one is continued.
    state.published.push(published(
        ModelKind::Actr,
        "2024-01-04",
        ("2024-01-02", "2024-01-03"),
        Parents {
            tpm: vec![v("2024-01-01")],
            cpm: Some(v("2024-01-01")),
            previous: Some(v("2024-01-02")),
        },
        true,
    ));
    state.latest.insert(ModelKind::Actr, v("2024-01-02"));
    assert_eq!(
        run("2024-01-05", &state).job(ModelKind::Actr).start,
        Start::Continue(v("2024-01-02"))
    );
}

#[test]
fn tpm_is_incremental_and_k_newest_snapshots_are_used_newest_first() {
    let mut state = running_state();
    for date in ["2024-01-31", "2024-03-01"] {
        state.published.push(published(
            ModelKind::Tpm,
            date,
            ("2024-01-01", "2024-01-30"),
            Parents::default(),
            true,
        ));
    }
    // The last TPM's window ended 01-30 (as recorded), so TPM of 03-31 starts on 01-31.
    let p = run("2024-03-31", &state);
    let tpm = p.job(ModelKind::Tpm);
    assert_eq!(tpm.start, Start::Continue(v("2024-03-01")));
    assert_eq!(tpm.window, Some((d("2024-01-31"), d("2024-03-30"))));
    // K = 3 newest before the date, newest first.
    let cpm = p.job(ModelKind::Cpm);
    assert_eq!(
        cpm.parents.tpm,
        vec![v("2024-03-01"), v("2024-01-31"), v("2024-01-01")]
    );
    // A rerun of an old date ignores everything published after it.
    let p = run("2024-01-03", &state);
    assert_eq!(p.job(ModelKind::Actr).parents.tpm, vec![v("2024-01-01")]);
    assert_eq!(
        p.job(ModelKind::Tpm).action,
        JobAction::NotDue {
            next_due: d("2024-01-31")
        }
    );
}

#[test]
fn missing_days_are_skipped_or_fail_the_plan() {
    let mut state = running_state();
    let gap = d("2024-01-04");
    for days in state.closed.values_mut() {
        days.remove(&gap);
    }
    let p = run("2024-01-08", &state);
    let cpm = p.job(ModelKind::Cpm);
    assert_eq!(cpm.action, JobAction::Run);
    assert_eq!(cpm.missing_days, vec![gap]);
    assert!(!cpm.train_days.contains(&gap));
    // A-CTR trains on yesterday only: the gap is not in its window.
    assert!(p.job(ModelKind::Actr).missing_days.is_empty());
    let strict = ScheduleConfig {
        missing_days: MissingDays::Fail,
        ..config()
    };
    let err = plan(d("2024-01-08"), &strict, &state, PlanOptions::default()).expect_err("fails");
    assert!(err.to_string().contains("2024-01-04"), "{err}");
    // An evaluation day that is not closed yet is missing too.
    let p = run("2024-04-01", &state);
    assert_eq!(p.job(ModelKind::Actr).eval_day, None);
    assert!(
        p.job(ModelKind::Actr)
            .missing_days
            .contains(&d("2024-04-01"))
    );
}

#[test]
fn published_versions_are_skipped_unless_forced() {
    let state = running_state();
    let p = run("2024-01-02", &state);
    assert_eq!(p.job(ModelKind::Actr).action, JobAction::AlreadyPublished);
    let forced = plan(
        d("2024-01-02"),
        &config(),
        &state,
        PlanOptions {
            force: true,
            ..PlanOptions::default()
        },
    )
    .expect("plan");
    let actr = forced.job(ModelKind::Actr);
    assert_eq!(actr.action, JobAction::Run);
    // The forced rerun plans exactly what the first run did (it ignores itself).
    assert_eq!(actr.start, Start::FromCpm(v("2024-01-01")));
}

#[test]
fn config_errors_name_the_field_and_defaults_fill_in() {
    let mut c = config();
    c.cpm.horizon_days = 0;
    let err = c.validate().expect_err("invalid");
    assert!(
        err.to_string().contains("schedule.cpm.horizon-days"),
        "{err}"
    );
    let c = ScheduleConfig {
        tpm_snapshots: 0,
        ..config()
    };
    assert!(
        c.validate()
            .expect_err("invalid")
            .to_string()
            .contains("tpm-snapshots")
    );
    let parsed: ScheduleConfig =
        toml::from_str("missing-days = \"fail\"\n[cpm]\nhorizon-days = 14\ncadence-days = 3\n")
            .expect("toml");
    assert_eq!(parsed.cpm.horizon_days, 14);
    assert_eq!(parsed.tpm, config().tpm);
    assert_eq!(parsed.missing_days, MissingDays::Fail);
    assert!(toml::from_str::<ScheduleConfig>("cadense = 3").is_err());
}

#[test]
fn the_plan_renders_as_a_table_and_serialises() {
    let p = run("2024-01-08", &running_state());
    let text = p.to_string();
    for needle in [
        "plan for 2024-01-08",
        "tpm",
        "not due (next 2024-01-31)",
        "cpm",
        "run",
        "actr",
        "continue d20240102",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let json = serde_json::to_string(&p).expect("json");
    let back: Plan = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, p);
}

#[test]
fn disabled_models_never_run_and_are_never_parents() {
    let mut state = StoreState {
        closed: closed("2024-01-01", "2024-03-01"),
        ..StoreState::default()
    };
    // A CPM and a TPM published while they were still enabled.
    state.published.push(published(
        ModelKind::Tpm,
        "2024-01-05",
        ("2023-07-09", "2024-01-04"),
        Parents::default(),
        true,
    ));
    state.published.push(published(
        ModelKind::Cpm,
        "2024-01-05",
        ("2023-12-06", "2024-01-04"),
        Parents::default(),
        true,
    ));
    let mut ad_only = config();
    ad_only.tpm.enabled = false;
    ad_only.cpm.enabled = false;
    let p = plan(d("2024-02-20"), &ad_only, &state, PlanOptions::default()).expect("plan");
    for kind in [ModelKind::Tpm, ModelKind::Cpm] {
        assert!(
            matches!(&p.job(kind).action, JobAction::Skip { reason } if reason.contains(&format!("schedule.{kind}.enabled"))),
            "{kind}: {:?}",
            p.job(kind).action
        );
    }
    let actr = p.job(ModelKind::Actr);
    assert_eq!(actr.action, JobAction::Run);
    assert_eq!(
        actr.start,
        Start::Fresh,
        "no CPM initialisation when CPM is off"
    );
    assert_eq!(
        actr.parents,
        Parents::default(),
        "no TPM snapshots when TPM is off"
    );

    // Only TPM off: A-CTR still starts from the CPM, without snapshots.
    let mut cpm_only = config();
    cpm_only.tpm.enabled = false;
    let p = plan(d("2024-01-06"), &cpm_only, &state, PlanOptions::default()).expect("plan");
    assert_eq!(
        p.job(ModelKind::Actr).start,
        Start::FromCpm(v("2024-01-05"))
    );
    assert!(p.job(ModelKind::Actr).parents.tpm.is_empty());
    assert!(p.job(ModelKind::Cpm).parents.tpm.is_empty());

    // A-CTR cannot be switched off; the error names the field.
    let mut none = config();
    none.actr.enabled = false;
    let err = plan(d("2024-01-06"), &none, &state, PlanOptions::default()).expect_err("invalid");
    assert!(err.to_string().contains("schedule.actr.enabled"), "{err}");
}

#[test]
fn a_warm_started_cpm_continues_its_newest_version_over_the_new_days() {
    let mut state = StoreState {
        closed: closed("2024-01-01", "2024-03-01"),
        ..StoreState::default()
    };
    state.published.push(published(
        ModelKind::Cpm,
        "2024-01-10",
        ("2023-12-11", "2024-01-09"),
        Parents::default(),
        true,
    ));
    let warm = ScheduleConfig {
        cpm_warm_start: true,
        ..config()
    };
    let p = plan(d("2024-01-17"), &warm, &state, PlanOptions::default()).expect("plan");
    let cpm = p.job(ModelKind::Cpm);
    assert_eq!(cpm.action, JobAction::Run);
    assert_eq!(cpm.start, Start::Continue(v("2024-01-10")));
    assert_eq!(cpm.window, Some((d("2024-01-10"), d("2024-01-16"))));
    assert_eq!(cpm.parents.previous, Some(v("2024-01-10")));
    // The default (the paper's): fresh over the whole horizon, no previous version.
    let cold = run("2024-01-17", &state);
    let cpm = cold.job(ModelKind::Cpm);
    assert_eq!(cpm.start, Start::Fresh);
    assert_eq!(cpm.window, Some((d("2023-12-18"), d("2024-01-16"))));
    assert_eq!(cpm.parents.previous, None);
    // A long gap: the warm start is clipped to the horizon.
    let p = plan(d("2024-03-01"), &warm, &state, PlanOptions::default()).expect("plan");
    assert_eq!(
        p.job(ModelKind::Cpm).window,
        Some((d("2024-01-31"), d("2024-02-29")))
    );
}
