//! [`ScheduleConfig`]: horizons, cadences, K and the missing-day policy, with validation.

use ctrflow_schemas::{Domain, EventDate, ModelKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Horizon and cadence of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSchedule {
    /// Days of data a run may look back over (its window ends the day before the date).
    pub horizon_days: u32,
    /// Days between runs.
    pub cadence_days: u32,
    /// Whether the model runs at all (default true). TPM and CPM may be switched off: CPM
    /// then trains without historical embeddings from TPM, and A-CTR continues itself
    /// instead of starting from a CPM (the E-CDCTR ablations; a team without natural-domain
    /// data). A-CTR is always enabled.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl ModelSchedule {
    /// An enabled model with this horizon and cadence.
    pub fn every(horizon_days: u32, cadence_days: u32) -> Self {
        ModelSchedule {
            horizon_days,
            cadence_days,
            enabled: true,
        }
    }
}

/// What to do when a window has days without `_SUCCESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingDays {
    /// Report them and train on the closed days (skip the job when none is left).
    #[default]
    Skip,
    /// Fail the job.
    Fail,
}

/// Where models are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvaluateOn {
    /// On the date itself, the day after the training window (it must be closed).
    #[default]
    NextDay,
    /// On a hashed holdout of the window's rows (`daily.holdout-percent`), kept out of
    /// training; the date itself is not needed.
    Holdout,
}

/// `[daily.schedule]`: the tri-level schedule. Defaults follow the E-CDCTR paper: TPM over
/// 180 days every 30, CPM over 30 days every 7, A-CTR daily on yesterday, K = 3 snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ScheduleConfig {
    /// TPM.
    pub tpm: ModelSchedule,
    /// CPM.
    pub cpm: ModelSchedule,
    /// A-CTR.
    pub actr: ModelSchedule,
    /// K: the TPM snapshots CPM and A-CTR use as historical embeddings.
    pub tpm_snapshots: usize,
    /// Days without `_SUCCESS` in a window: `skip` or `fail`.
    pub missing_days: MissingDays,
    /// `next-day` (default) or `holdout`.
    pub evaluate_on: EvaluateOn,
    /// CPM continues its newest version over the days after that version's window instead
    /// of starting fresh on its whole horizon (default false: fresh, as in the paper). Warm
    /// starts keep what earlier windows taught it, which matters when windows are small, and
    /// train each natural day once instead of `horizon / cadence` times.
    pub cpm_warm_start: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            tpm: ModelSchedule::every(180, 30),
            cpm: ModelSchedule::every(30, 7),
            actr: ModelSchedule::every(1, 1),
            tpm_snapshots: 3,
            missing_days: MissingDays::Skip,
            evaluate_on: EvaluateOn::NextDay,
            cpm_warm_start: false,
        }
    }
}

/// A schedule that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    /// A config value is out of range.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// Dotted field path, e.g. `schedule.cpm.horizon-days`.
        field: String,
        /// What is allowed.
        reason: String,
    },
    /// A running job's window has days without `_SUCCESS` and the policy is `fail`.
    #[error("{model}: {domain} days without _SUCCESS: {}", days.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))]
    MissingDays {
        /// The model.
        model: ModelKind,
        /// The landing table.
        domain: Domain,
        /// The missing days.
        days: Vec<EventDate>,
    },
}

impl ScheduleConfig {
    /// The schedule of `kind`.
    pub fn model(&self, kind: ModelKind) -> &ModelSchedule {
        match kind {
            ModelKind::Tpm => &self.tpm,
            ModelKind::Cpm => &self.cpm,
            ModelKind::Actr => &self.actr,
        }
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let err = |field: String, reason: &str| ScheduleError::Config {
            field,
            reason: reason.into(),
        };
        for kind in ModelKind::ALL {
            let m = self.model(kind);
            if !(1..=3660).contains(&m.horizon_days) {
                return Err(err(
                    format!("schedule.{kind}.horizon-days"),
                    "must be in 1..=3660",
                ));
            }
            if !(1..=3660).contains(&m.cadence_days) {
                return Err(err(
                    format!("schedule.{kind}.cadence-days"),
                    "must be in 1..=3660",
                ));
            }
        }
        if !self.actr.enabled {
            return Err(err(
                "schedule.actr.enabled".into(),
                "A-CTR is the served model and cannot be disabled",
            ));
        }
        if !(1..=64).contains(&self.tpm_snapshots) {
            return Err(err("schedule.tpm-snapshots".into(), "must be in 1..=64"));
        }
        Ok(())
    }
}
