//! [`plan`]: the pure scheduling decision of one date (see the crate docs for the rules).

use std::collections::{BTreeMap, BTreeSet};

use ctrflow_schemas::{Domain, EventDate, ModelKind, ModelVersion, Parents};
use serde::{Deserialize, Serialize};

use crate::config::{EvaluateOn, MissingDays, ScheduleConfig, ScheduleError};

/// One published model version, as the planner needs it (built from its manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedModel {
    /// Which model.
    pub model: ModelKind,
    /// Its version.
    pub version: ModelVersion,
    /// The schedule date it was trained for.
    pub date: EventDate,
    /// Its training window (inclusive).
    pub window: Option<(EventDate, EventDate)>,
    /// Its parents.
    pub parents: Parents,
    /// Accepted by the gate or not gated (false: rejected).
    pub accepted: bool,
}

/// What the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Every published version.
    pub published: Vec<PublishedModel>,
    /// The version each `LATEST` points to.
    pub latest: BTreeMap<ModelKind, ModelVersion>,
    /// Closed days (`_SUCCESS` present) per landing table.
    pub closed: BTreeMap<Domain, BTreeSet<EventDate>>,
}

/// Switches of one planning call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Plan versions already published for the date as if they were not.
    pub force: bool,
    /// A TPM or CPM of the date counts as a parent of the jobs after it.
    pub wait_for_parents: bool,
}

/// What happens to one model on the date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum JobAction {
    /// Train, evaluate, publish.
    Run,
    /// Its cadence has not come round.
    NotDue {
        /// The first date it is due again.
        next_due: EventDate,
    },
    /// A version for the date is already published.
    AlreadyPublished,
    /// Due, but it cannot run.
    Skip {
        /// Why.
        reason: String,
    },
}

/// Where training starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", content = "version", rename_all = "kebab-case")]
pub enum Start {
    /// Fresh initialisation.
    Fresh,
    /// The previous version of the same model (incremental training).
    Continue(ModelVersion),
    /// A-CTR initialised from this CPM (batch norm reset).
    FromCpm(ModelVersion),
}

/// The plan of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// Which model.
    pub model: ModelKind,
    /// The version it publishes: named after the date.
    pub version: ModelVersion,
    /// What happens.
    pub action: JobAction,
    /// The landing table it trains and evaluates on.
    pub domain: Domain,
    /// Training window, inclusive (`None` when it does not run).
    pub window: Option<(EventDate, EventDate)>,
    /// Closed days of the window, ascending.
    pub train_days: Vec<EventDate>,
    /// Days of the window, and the evaluation day, without `_SUCCESS`.
    pub missing_days: Vec<EventDate>,
    /// The evaluation day (the date), when it is closed and models are evaluated on the next
    /// day (always `None` with `evaluate-on = "holdout"`).
    pub eval_day: Option<EventDate>,
    /// Where training starts.
    pub start: Start,
    /// Exactly the parents the job uses.
    pub parents: Parents,
}

/// The plan of one date: TPM, CPM and A-CTR, in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The schedule date.
    pub date: EventDate,
    /// One job per model, in schedule order.
    pub jobs: Vec<PlannedJob>,
}

impl Plan {
    /// The job of `kind`.
    pub fn job(&self, kind: ModelKind) -> &PlannedJob {
        let index = ModelKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &self.jobs[index]
    }
}

fn domain_of(kind: ModelKind) -> Domain {
    match kind {
        ModelKind::Tpm | ModelKind::Cpm => Domain::Natural,
        ModelKind::Actr => Domain::Ad,
    }
}

struct Planner<'a> {
    date: EventDate,
    config: &'a ScheduleConfig,
    state: &'a StoreState,
    options: PlanOptions,
}

impl<'a> Planner<'a> {
    /// Published versions of `kind` before the date, newest first.
    fn history(&self, kind: ModelKind) -> Vec<&'a PublishedModel> {
        let mut h: Vec<&PublishedModel> = self
            .state
            .published
            .iter()
            .filter(|m| m.model == kind && m.date < self.date)
            .collect();
        h.sort_by(|a, b| (b.date, &b.version).cmp(&(a.date, &a.version)));
        h
    }

    fn find(&self, kind: ModelKind, version: &ModelVersion) -> Option<&'a PublishedModel> {
        self.state
            .published
            .iter()
            .find(|m| m.model == kind && &m.version == version)
    }

    /// Already published / due / not due.
    fn action(&self, kind: ModelKind) -> JobAction {
        if !self.config.model(kind).enabled {
            return JobAction::Skip {
                reason: format!("disabled (schedule.{kind}.enabled = false)"),
            };
        }
        let version = ModelVersion::for_date(self.date);
        if !self.options.force && self.find(kind, &version).is_some() {
            return JobAction::AlreadyPublished;
        }
        let cadence = i64::from(self.config.model(kind).cadence_days);
        match self.history(kind).first() {
            Some(last) if last.date.days_until(self.date) < cadence => JobAction::NotDue {
                next_due: last.date.offset(cadence),
            },
            _ => JobAction::Run,
        }
    }

    /// A job that does not run.
    fn idle(&self, kind: ModelKind, action: JobAction) -> PlannedJob {
        PlannedJob {
            model: kind,
            version: ModelVersion::for_date(self.date),
            action,
            domain: domain_of(kind),
            window: None,
            train_days: Vec::new(),
            missing_days: Vec::new(),
            eval_day: None,
            start: Start::Fresh,
            parents: Parents::default(),
        }
    }

    /// A job that runs from `start` with `parents`, over its window from `from` (or the full
    /// horizon), subject to the missing-day policy.
    fn running(
        &self,
        kind: ModelKind,
        from: Option<EventDate>,
        start: Start,
        parents: Parents,
    ) -> Result<PlannedJob, ScheduleError> {
        let domain = domain_of(kind);
        let to = self.date.offset(-1);
        let full = self
            .date
            .offset(-i64::from(self.config.model(kind).horizon_days));
        let from = from.map_or(full, |f| f.max(full));
        let mut job = self.idle(kind, JobAction::Run);
        if from > to {
            job.action = JobAction::Skip {
                reason: format!("empty window: {from} is after {to}"),
            };
            return Ok(job);
        }
        let empty = BTreeSet::new();
        let closed = self.state.closed.get(&domain).unwrap_or(&empty);
        let (train_days, mut missing): (Vec<EventDate>, Vec<EventDate>) =
            from.range_inclusive(to).partition(|d| closed.contains(d));
        let eval_day = match self.config.evaluate_on {
            EvaluateOn::NextDay => {
                let day = closed.contains(&self.date).then_some(self.date);
                if day.is_none() {
                    missing.push(self.date);
                }
                day
            }
            // Evaluated on a holdout of the window: the date itself is not needed.
            EvaluateOn::Holdout => None,
        };
        if !missing.is_empty() && self.config.missing_days == MissingDays::Fail {
            return Err(ScheduleError::MissingDays {
                model: kind,
                domain,
                days: missing,
            });
        }
        job.window = Some((from, to));
        job.missing_days = missing;
        job.eval_day = eval_day;
        if train_days.is_empty() {
            job.action = JobAction::Skip {
                reason: format!("no closed {domain} days in {from}..={to}"),
            };
            job.window = None;
            return Ok(job);
        }
        job.train_days = train_days;
        job.start = start;
        job.parents = parents;
        Ok(job)
    }

    /// The day after `version`'s window, if it is published with one.
    fn after_window(&self, kind: ModelKind, version: &ModelVersion) -> Option<EventDate> {
        self.find(kind, version)
            .and_then(|m| m.window)
            .map(|(_, to)| to.succ())
    }

    fn tpm(&self) -> Result<PlannedJob, ScheduleError> {
        let kind = ModelKind::Tpm;
        let action = self.action(kind);
        if action != JobAction::Run {
            return Ok(self.idle(kind, action));
        }
        let prev = self.history(kind).first().copied();
        self.incremental(kind, prev, Vec::new())
    }

    /// A job that continues `prev` over the days after its window (clipped to the horizon),
    /// or starts fresh on its whole horizon without one; `tpm` are its snapshot parents.
    fn incremental(
        &self,
        kind: ModelKind,
        prev: Option<&PublishedModel>,
        tpm: Vec<ModelVersion>,
    ) -> Result<PlannedJob, ScheduleError> {
        match prev {
            Some(prev) => self.running(
                kind,
                self.after_window(kind, &prev.version),
                Start::Continue(prev.version.clone()),
                Parents {
                    tpm,
                    previous: Some(prev.version.clone()),
                    ..Parents::default()
                },
            ),
            None => self.running(
                kind,
                None,
                Start::Fresh,
                Parents {
                    tpm,
                    ..Parents::default()
                },
            ),
        }
    }

    /// The K newest TPM snapshots, newest first (today's first when waiting for it).
    fn snapshots(&self, tpm_today: bool) -> Vec<ModelVersion> {
        if !self.config.tpm.enabled {
            return Vec::new();
        }
        let today = tpm_today.then(|| ModelVersion::for_date(self.date));
        today
            .into_iter()
            .chain(
                self.history(ModelKind::Tpm)
                    .into_iter()
                    .map(|m| m.version.clone()),
            )
            .take(self.config.tpm_snapshots)
            .collect()
    }

    fn cpm(&self, tpm_today: bool) -> Result<PlannedJob, ScheduleError> {
        let kind = ModelKind::Cpm;
        let action = self.action(kind);
        if action != JobAction::Run {
            return Ok(self.idle(kind, action));
        }
        let tpm = self.snapshots(tpm_today);
        let prev = self
            .history(kind)
            .first()
            .copied()
            .filter(|_| self.config.cpm_warm_start);
        self.incremental(kind, prev, tpm)
    }

    fn actr(&self, tpm_today: bool, cpm_today: bool) -> Result<PlannedJob, ScheduleError> {
        let kind = ModelKind::Actr;
        let action = self.action(kind);
        if action != JobAction::Run {
            return Ok(self.idle(kind, action));
        }
        // The version continued from: the live one if it predates the date, else the newest
        // accepted one (a rejected version is never continued).
        let live = self
            .state
            .latest
            .get(&kind)
            .and_then(|v| self.find(kind, v))
            .filter(|m| m.date < self.date);
        let prev = live.or_else(|| self.history(kind).into_iter().find(|m| m.accepted));
        // The newest CPM and its date.
        let newest_cpm: Option<(ModelVersion, EventDate)> = if !self.config.cpm.enabled {
            None
        } else if cpm_today {
            Some((ModelVersion::for_date(self.date), self.date))
        } else {
            self.history(ModelKind::Cpm)
                .first()
                .map(|m| (m.version.clone(), m.date))
        };
        let tpm = self.snapshots(tpm_today);
        let from_cpm = |cpm: ModelVersion, tpm: Vec<ModelVersion>| {
            self.running(
                kind,
                None,
                Start::FromCpm(cpm.clone()),
                Parents {
                    tpm,
                    cpm: Some(cpm),
                    previous: None,
                },
            )
        };
        match (prev, newest_cpm) {
            (Some(prev), cpm) => {
                let lineage_cpm_date = prev
                    .parents
                    .cpm
                    .as_ref()
                    .and_then(|v| self.find(ModelKind::Cpm, v))
                    .map(|m| m.date);
                match cpm {
                    Some((cpm, cpm_date)) if lineage_cpm_date.is_none_or(|d| cpm_date > d) => {
                        from_cpm(cpm, tpm)
                    }
                    _ => self.running(
                        kind,
                        self.after_window(kind, &prev.version),
                        Start::Continue(prev.version.clone()),
                        Parents {
                            tpm,
                            cpm: prev.parents.cpm.clone(),
                            previous: Some(prev.version.clone()),
                        },
                    ),
                }
            }
            (None, Some((cpm, _))) => from_cpm(cpm, tpm),
            (None, None) => self.incremental(kind, None, tpm),
        }
    }
}

/// Plans `date`: which models run, on which days, from what, with which parents.
///
/// # Errors
/// [`ScheduleError::Config`] for an invalid config; [`ScheduleError::MissingDays`] when a
/// running job's window (or the evaluation day) has days without `_SUCCESS` and
/// `missing-days = "fail"`.
pub fn plan(
    date: EventDate,
    config: &ScheduleConfig,
    state: &StoreState,
    options: PlanOptions,
) -> Result<Plan, ScheduleError> {
    config.validate()?;
    let planner = Planner {
        date,
        config,
        state,
        options,
    };
    let today = |job: &PlannedJob| {
        options.wait_for_parents
            && matches!(job.action, JobAction::Run | JobAction::AlreadyPublished)
    };
    let tpm = planner.tpm()?;
    let tpm_today = today(&tpm);
    let cpm = planner.cpm(tpm_today)?;
    let cpm_today = today(&cpm);
    let actr = planner.actr(tpm_today, cpm_today)?;
    Ok(Plan {
        date,
        jobs: vec![tpm, cpm, actr],
    })
}
