//! Command-line definitions (clap) and dispatch. The subcommand and flag names are a contract with
//! schedulers and scripts (see `docs/architecture.md`); change them only compatibly.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::config::{ConfigError, CtrflowConfig, LogFormat};

/// ctrflow: a streaming, daily-update training pipeline for cross-domain CTR models.
///
/// Every flag can also come from the config file (--config FILE) or from `CTRFLOW__*`
/// environment variables (e.g. CTRFLOW__STORE__URL=s3://bucket/ctr). `--store URL` is the
/// object-store root everywhere: file:///abs/dir or a local path, s3://bucket/prefix (AWS_*
/// variables, AWS_ENDPOINT_URL for S3-compatible servers), gs://, az://, memory://name.
///
/// Exit codes: 0 success, 1 failure, 2 bad usage or configuration.
#[derive(Debug, Parser)]
#[command(
    name = "ctrflow",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// TOML configuration file layered over the built-in defaults.
    #[arg(long, global = true, env = "CTRFLOW_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr (overrides `log.format`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write seeded synthetic two-domain logs (natural ~20x ad) as a Parquet archive in the
    /// landing layout, then print a summary of what was written.
    ///
    /// Same seed, same bytes. Users share latent interests across domains and carry long
    /// behaviour histories, so cross-domain transfer and long-sequence models have signal to find.
    ///
    /// Example: ctrflow generate --store ./ctrflow-data --days 14 --users 20000
    Generate(GenerateArgs),
    /// Import a public dataset as event-schema Parquet.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Reproducible experiments run through the production daily job.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Run SQL over the archive. Tables: `natural`, `ad` (only files listed by manifests).
    ///
    /// Example: ctrflow sql --store ./ctrflow-data "SELECT domain, count(*) AS events,
    /// avg(label) AS ctr FROM ad GROUP BY domain"
    Sql(SqlArgs),
    /// Publish archived or generated events to the Kafka topics (one JSON message per event,
    /// keyed by user id) at a target rate, for load tests and demos.
    ///
    /// Example: ctrflow produce --brokers 127.0.0.1:9092 --store ./ctrflow-data --rate 50000
    Produce(ProduceArgs),
    /// The long-running ingest job: Kafka -> validate -> Parquet landing tables, exactly once.
    ///
    /// Consumes both domain topics in a consumer group, writes valid events under landing/,
    /// rejected ones (with the reason) under dead-letter/, events of closed days under late/,
    /// epoch manifests under landing/_epochs/, closes days with _SUCCESS manifests, and commits
    /// Kafka offsets only after the epoch manifest is durable. Run N replicas with the same
    /// --group to scale out. SIGINT/SIGTERM finish the open epoch, commit and exit 0; after a
    /// crash just restart it (see docs/ingest.md). Decoding and encoding run at the lowest CPU
    /// priority, librdkafka's threads at the process's ([runtime] worker-niceness, default 19):
    /// a saturated CPU delays encoding before fetches, heartbeats and commits.
    /// --until-caught-up turns it into a batch job: it lands what the topics hold when its
    /// partitions are assigned, commits and exits 0.
    ///
    /// Example: ctrflow ingest --brokers kafka:9092 --store s3://ml/ctrflow --group ctrflow-ingest
    ///
    /// Example: ctrflow ingest --until-caught-up && ctrflow daily --date 2024-03-08
    Ingest(IngestArgs),
    /// Run the E-CDCTR schedule for one date: train whichever of TPM, CPM and A-CTR are due,
    /// evaluate each on the date's data, gate A-CTR against the live model, publish.
    ///
    /// Models published for DATE are trained on closed days up to DATE-1 and evaluated on
    /// DATE (next-day evaluation), so run it once DATE is closed (its _SUCCESS exists). Already
    /// published versions are skipped (use --force to redo them), so reruns are safe. Prints the
    /// plan and a summary; --dry-run only prints the plan.
    ///
    /// Example: ctrflow daily --store s3://ml/ctrflow --date 2024-03-08
    Daily(DailyArgs),
    /// Run the daily job for every date from --from to --to, in order, with a progress bar.
    ///
    /// Idempotent and resumable: published versions are skipped, so after a crash rerun the
    /// same command and it continues where it stopped.
    ///
    /// Example: ctrflow backfill --store ./ctrflow-data --from 2024-01-02 --to 2024-01-14
    Backfill(BackfillArgs),
    /// List, inspect and roll back published models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The whole system on embedded defaults: an in-process Kafka (librdkafka's mock
    /// cluster), a local object store under --dir, generated logs for --days days, produce ->
    /// ingest -> day close -> the daily schedule on every day -> publish, then a summary.
    ///
    /// Example: ctrflow demo            (writes ./ctrflow-demo)
    ///
    /// Example: ctrflow demo --brokers 127.0.0.1:9092 --store s3://demo/ctrflow
    Demo(DemoArgs),
    /// Remove orphans: data and model files that no manifest lists (left by crashed ingest
    /// epochs, interrupted publishes or --force republishes). Readers already ignore them.
    ///
    /// Only objects older than --older-than are removed, so files of writers still running are
    /// safe; manifests, _SUCCESS, LATEST and epoch manifests are never touched.
    ///
    /// Example: ctrflow gc --store s3://ml/ctrflow --older-than 24h --dry-run
    Gc(GcArgs),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `ctrflow gc`
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Object-store root (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Grace period: only orphans last modified longer ago than this are removed.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub older_than: std::time::Duration,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `ctrflow daily`
#[derive(Debug, Args)]
pub struct DailyArgs {
    /// Object-store root (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Publish models, snapshots and reports here instead of the landing store (which is
    /// then only read): several model lines can share one archive.
    #[arg(long, value_name = "URL")]
    pub models_store: Option<String>,
    /// The schedule date, YYYY-MM-DD (models are evaluated on it, trained up to the day before).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    /// Retrain and republish versions of DATE that are already published.
    #[arg(long)]
    pub force: bool,
    /// Let CPM and A-CTR use a parent that is due on DATE (trained first) instead of only
    /// parents published before DATE.
    #[arg(long)]
    pub wait: bool,
    /// Print the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the networks train: flex (burn's pure-Rust CPU backend, the default), libtorch
    /// (CPU) or cuda:N (a GPU); libtorch and cuda:N need a build with `--features tch`.
    /// Overrides `daily.<model>.train.device` for all three models.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<ctrflow_models::ComputeDevice>,
}

/// `ctrflow backfill`
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Object-store root (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Publish models, snapshots and reports here instead of the landing store (which is
    /// then only read): several model lines can share one archive.
    #[arg(long, value_name = "URL")]
    pub models_store: Option<String>,
    /// First date, YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: String,
    /// Last date, YYYY-MM-DD (inclusive).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: String,
    /// Retrain and republish versions that are already published.
    #[arg(long)]
    pub force: bool,
    /// Parents due on a date are trained first and used the same day.
    #[arg(long)]
    pub wait: bool,
    /// Where the networks train: flex (burn's pure-Rust CPU backend, the default), libtorch
    /// (CPU) or cuda:N (a GPU); libtorch and cuda:N need a build with `--features tch`.
    /// Overrides `daily.<model>.train.device` for all three models.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<ctrflow_models::ComputeDevice>,
}

/// `ctrflow models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every published version: date, window, parents, metrics, gate verdict; `*` marks LATEST.
    ///
    /// Example: ctrflow models list --store ./ctrflow-demo/store --model actr
    List {
        /// Object-store root (overrides `store.url`).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// Only this model: tpm, cpm or actr.
        #[arg(long)]
        model: Option<String>,
    },
    /// The full manifest of one version (default: the LATEST one) as JSON.
    ///
    /// Example: ctrflow models show actr d20240108 --store ./ctrflow-demo/store
    Show {
        /// tpm, cpm or actr.
        model: String,
        /// The version (default: LATEST).
        version: Option<String>,
        /// Object-store root (overrides `store.url`).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Point LATEST of a model back at an earlier published version (a conditional swap).
    /// Rejected versions cannot be made live.
    ///
    /// Example: ctrflow models rollback actr --to d20240106 --store s3://ml/ctrflow
    Rollback {
        /// tpm, cpm or actr.
        model: String,
        /// The version to make live.
        #[arg(long, value_name = "VERSION")]
        to: String,
        /// Object-store root (overrides `store.url`).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
}

/// `ctrflow demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working directory: the object store goes under DIR/store (ignored with --store).
    #[arg(long, value_name = "DIR", default_value = "ctrflow-demo")]
    pub dir: PathBuf,
    /// Use this Kafka instead of the in-process mock cluster.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Use this object store instead of DIR/store.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Days of generated logs (at least 3; the daily job runs on every closed day after the first).
    #[arg(long, default_value_t = 8)]
    pub days: u32,
    /// Events per day over both domains.
    #[arg(long, default_value_t = 12_000)]
    pub events_per_day: u64,
    /// Users of the generated world.
    #[arg(long, default_value_t = 3_000)]
    pub users: u64,
}

/// `ctrflow produce`
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Bootstrap brokers (overrides `kafka.brokers`).
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Archive to replay (overrides `store.url`); ignored with `--source generate`.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Replay the archive, or generate events from `[generator]` on the fly.
    #[arg(long, value_enum, default_value_t = ProduceSource::Archive)]
    pub source: ProduceSource,
    /// Messages per second (unlimited when absent).
    #[arg(long)]
    pub rate: Option<f64>,
    /// First day of the archive to replay.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<String>,
    /// Last day of the archive to replay.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<String>,
}

/// What `ctrflow produce` publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProduceSource {
    /// Events of the archive in --store (days in order).
    Archive,
    /// Events generated from the `[generator]` config.
    Generate,
}

/// `ctrflow ingest`
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Bootstrap brokers (overrides `kafka.brokers`).
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Object-store root to land into (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Consumer group (overrides `kafka.group-id`).
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Drain and exit: stop once every partition held was read to the end offset it had when
    /// assigned, and its last epoch is landed and committed (sets `ingest.until-caught-up`).
    /// For scheduled jobs: land what is available now, then run `ctrflow daily`.
    #[arg(long)]
    pub until_caught_up: bool,
}

/// `ctrflow generate`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Object-store root to write into (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Number of days (overrides `generator.days`).
    #[arg(long)]
    pub days: Option<u32>,
    /// Number of users (overrides `generator.users`).
    #[arg(long)]
    pub users: Option<u64>,
    /// Number of natural content items (overrides `generator.items`).
    #[arg(long)]
    pub items: Option<u64>,
    /// Events per day over both domains (overrides `generator.events-per-day`).
    #[arg(long)]
    pub events_per_day: Option<u64>,
    /// Random seed (overrides `generator.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// First day, YYYY-MM-DD (overrides `generator.start-date`).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start_date: Option<String>,
    /// Output: a Parquet archive in the store, or wire-format JSON lines to --out.
    #[arg(long, value_enum, default_value_t = GenerateFormat::Parquet)]
    pub format: GenerateFormat,
    /// File for `--format jsonl` (`-` for stdout).
    #[arg(long, value_name = "FILE", required_if_eq("format", "jsonl"))]
    pub out: Option<PathBuf>,
}

/// Output of `ctrflow generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateFormat {
    /// Parquet in the landing layout with `_SUCCESS` day manifests.
    Parquet,
    /// One wire-format JSON event per line.
    Jsonl,
}

/// `ctrflow experiment ...`
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// The E-CDCTR ablation: A-CTR on ad data only, + CPM initialisation, + TPM historical
    /// embeddings, and the full tri-level schedule, each over several seeds.
    ///
    /// The events (MovieLens via --data, or the generator via --generated) become an archive
    /// under OUT/archive; every variant and seed then runs `ctrflow backfill` over every day of
    /// it, publishing into OUT/runs/VARIANT/seed-N. The last --test-fraction of ad events by
    /// time are the test set: each test day is scored by the A-CTR published for that day,
    /// trained only on earlier days, and the predictions are pooled over the test period. The
    /// publish gate is opened (it would pick the served model with the test day's labels).
    /// Mean and standard deviation over seeds of AUC, GAUC and logloss go to OUT/results.md
    /// and OUT/results.json. Repeating the command continues interrupted runs.
    ///
    /// Example: ctrflow --config configs/experiment-ml1m.toml experiment ecdctr
    ///          --data ~/.cache/ctrflow-data/ml-1m --out ./ecdctr-ml1m
    Ecdctr(EcdctrArgs),
}

/// `ctrflow experiment ecdctr`
#[derive(Debug, Args)]
pub struct EcdctrArgs {
    /// MovieLens directory with RecBole atomic files (`scripts/fetch-movielens.sh`).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "generated",
        conflicts_with = "generated"
    )]
    pub data: Option<PathBuf>,
    /// Use the synthetic generator (`[generator]` in the config) instead of MovieLens.
    #[arg(long)]
    pub generated: bool,
    /// Experiment directory: archive, runs and results.
    #[arg(long, value_name = "DIR", default_value = "ctrflow-experiment")]
    pub out: PathBuf,
    /// Comma-separated variants: ad-only, cpm, tpm, full.
    #[arg(long, value_delimiter = ',', default_value = "ad-only,cpm,tpm,full")]
    pub variants: Vec<String>,
    /// Comma-separated seeds; one run per variant and seed.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Share of ad events, the latest by time, held out as the test set.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Comma-separated genres that make a movie an ad (overrides `movielens.ad-genres`).
    #[arg(long, value_delimiter = ',', value_name = "GENRE,...")]
    pub ad_genres: Option<Vec<String>>,
    /// Keep the checkpoint files of every version of a finished run. By default only each
    /// model's live version keeps them (a daily checkpoint per run adds up to gigabytes);
    /// manifests, snapshots, reports and predictions always stay.
    #[arg(long)]
    pub keep_checkpoints: bool,
}

/// `ctrflow import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import MovieLens (100k or 1M) in RecBole's atomic-file format (DIR holds NAME.inter,
    /// NAME.item and optionally NAME.user; `scripts/fetch-movielens.sh` downloads them).
    ///
    /// label = rating >= 4; domain = ad when the movie has one of the ad genres, else natural;
    /// behaviour sequence = the user's earlier rated movies, most recent first.
    ///
    /// Example: ctrflow import movielens ~/.cache/ctrflow-data/ml-100k --store ./ml100k
    Movielens(MovielensArgs),
}

/// `ctrflow import movielens`
#[derive(Debug, Args)]
pub struct MovielensArgs {
    /// Directory with the RecBole atomic files.
    pub dir: PathBuf,
    /// Object-store root to write into (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Comma-separated genres that make a movie an ad (overrides `movielens.ad-genres`).
    #[arg(long, value_delimiter = ',', value_name = "GENRE,...")]
    pub ad_genres: Option<Vec<String>>,
}

/// `ctrflow sql`
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Object-store root to read (overrides `store.url`).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// The query.
    pub query: String,
}

/// Output of `ctrflow sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    /// Aligned text table.
    Table,
    /// CSV with header (nested columns such as hist_item_ids are not supported by CSV).
    Csv,
    /// One JSON object per line.
    Json,
}

/// `ctrflow config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE (with `CTRFLOW__*` overrides applied) and print the effective configuration.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Only validate; print nothing on success.
        #[arg(long)]
        quiet_ok: bool,
    },
    /// Print the effective configuration (defaults, --config file, environment).
    Show,
}

/// A failure that is the user's to fix: bad usage or configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether `args` name a command that trains models (`daily`, `backfill`, `demo`,
/// `experiment`): the binary runs those with tuned malloc settings.
pub fn trains(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> bool {
    Cli::try_parse_from(args).is_ok_and(|cli| {
        matches!(
            cli.command,
            Command::Daily(_) | Command::Backfill(_) | Command::Demo(_) | Command::Experiment(_)
        )
    })
}

/// The `ctrflow` binary's entry point: a training command first re-executes the process with
/// tuned malloc settings ([`ctrflow_models::malloc`]), then [`run`] parses and runs it.
pub fn main_entry() -> ExitCode {
    if trains(std::env::args_os()) {
        // If the re-execution fails, train with glibc's defaults rather than not at all.
        if let Err(e) = ctrflow_models::malloc::reexec_with_training_malloc() {
            eprintln!("warning: could not re-execute with tuned malloc settings: {e}");
        }
    }
    run(std::env::args_os())
}

/// Parses `args`, runs the command and maps the outcome to the documented exit codes.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", render_error(&err));
            let usage = err.downcast_ref::<ConfigError>().is_some()
                || err.downcast_ref::<UsageError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message before it already
/// contains (library errors often embed their source in their own message).
fn render_error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    let config_file = match &cli.command {
        Command::Config(ConfigCommand::Check { file, .. }) => Some(file.clone()),
        _ => cli.config.clone(),
    };
    let mut config = CtrflowConfig::load(config_file.as_deref(), std::env::vars())?;
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    crate::logging::init(&config.log, cli.verbose, cli.quiet);
    let tuned = std::env::var_os(ctrflow_models::malloc::TUNED_MARKER).is_some();
    tracing::debug!(
        malloc = if tuned {
            "training settings"
        } else {
            "glibc defaults"
        },
        settings = %ctrflow_models::malloc::settings_in_effect(),
        "allocator"
    );
    // Before any thread is reniced: librdkafka clients are created on this thread's priority.
    ctrflow_operators::priority::start_base_priority_thread()?;
    // One absolute value for every worker: a blocking thread started by a lowered worker
    // inherits its niceness and must not be lowered again.
    let niceness =
        ctrflow_operators::priority::niceness_below_current(config.runtime.worker_niceness)?;
    // Owned by the hook (tokio shares it between threads): one warning, not one per thread.
    let warned = std::sync::atomic::AtomicBool::new(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ctrflow-worker")
        .on_thread_start(move || {
            if let Err(e) = ctrflow_operators::priority::set_current_thread_niceness(niceness)
                && !warned.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(error = %e, niceness, "cannot lower the worker threads' priority; they keep the process's");
            }
        })
        .build()?;
    runtime.block_on(commands::dispatch(cli.command, config))
}

#[cfg(test)]
mod tests {
    use super::{render_error, trains};

    #[test]
    fn only_training_commands_count_as_training() {
        for args in [
            &["ctrflow", "daily", "--date", "2024-01-02"][..],
            &[
                "ctrflow", "--config", "x.toml", "backfill", "--from", "a", "--to", "b",
            ],
            &["ctrflow", "demo"],
        ] {
            assert!(trains(args), "{args:?}");
        }
        for args in [
            &["ctrflow", "ingest", "--brokers", "b:1"][..],
            &["ctrflow", "sql", "SELECT 1"],
            &["ctrflow", "--help"],
            &["ctrflow", "daily"],
        ] {
            assert!(!trains(args), "{args:?}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("operator `decode` failed: {source}")]
    struct Embeds {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let inner = std::io::Error::other("disk full");
        let err = anyhow::Error::new(Embeds { source: inner });
        assert_eq!(render_error(&err), "operator `decode` failed: disk full");
        let err = anyhow::Error::new(std::io::Error::other("disk full")).context("writing part");
        assert_eq!(render_error(&err), "writing part: disk full");
    }
}
