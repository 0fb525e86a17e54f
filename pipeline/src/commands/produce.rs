//! `ctrflow produce`: replays the archive (or generated events) into the domain topics.

use ctrflow_operators::OperatorError;
use ctrflow_operators::generate::Generator;
use ctrflow_operators::kafka::KafkaProducer;
use ctrflow_operators::sql::trusted_landing_files;
use ctrflow_schemas::{Domain, Event, EventDate, KeyLayout, events_from_batch};

use crate::cli::{ProduceArgs, ProduceSource, UsageError};
use crate::config::CtrflowConfig;
use crate::progress;

pub async fn run(args: ProduceArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    if let Some(b) = args.brokers.clone() {
        config.kafka.brokers = b;
    }
    config.validate()?;
    let producer = KafkaProducer::new(&config.kafka)?;
    let bar = progress::bar(0, "messages");
    bar.set_message("producing");
    let topics = config.kafka.topics.clone();
    let topic = |d: Domain| topics.topic(d).to_string();
    let to_message = |e: &Event| (topic(e.domain), e.user_id.0.to_be_bytes(), e.to_json());
    let mut total = 0u64;
    match args.source {
        ProduceSource::Generate => {
            let cfg = config.generator.clone();
            bar.set_length(cfg.events_per_day * u64::from(cfg.days));
            let mut generator = Generator::new(&cfg)?;
            // One day at a time: memory holds one day of messages.
            while let Some(chunk) = generator.next_chunk(50_000) {
                let base = total;
                let messages: Vec<_> = chunk.events.iter().map(to_message).collect();
                total += producer
                    .send_all(messages, args.rate, |n| bar.set_position(base + n))
                    .await?;
            }
        }
        ProduceSource::Archive => {
            let parse = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<EventDate>> {
                v.as_deref()
                    .map(|s| s.parse::<EventDate>())
                    .transpose()
                    .map_err(|e| UsageError(format!("{flag}: {e}")).into())
            };
            let (from, to) = (parse("--from", &args.from)?, parse("--to", &args.to)?);
            let storage = super::open_store(args.store.clone(), &mut config)?;
            let range = match (from, to) {
                (Some(f), Some(t)) => Some((f, t)),
                (Some(f), None) => Some((f, EventDate::from_ymd(9999, 12, 31).unwrap_or(f))),
                (None, Some(t)) => Some((EventDate::from_ymd(1970, 1, 1).unwrap_or(t), t)),
                (None, None) => None,
            };
            // Files of both domains, day by day.
            let mut files = Vec::new();
            for domain in Domain::ALL {
                files.extend(trusted_landing_files(&storage, domain, range).await?);
            }
            files.sort_by_key(|k| (KeyLayout.date_of(k), k.clone()));
            for key in files {
                let batches = storage.read_parquet(&key).await?;
                let mut messages = Vec::new();
                for b in &batches {
                    let events = events_from_batch(b).map_err(OperatorError::from)?;
                    messages.extend(events.iter().map(to_message));
                }
                let base = total;
                bar.set_length(bar.length().unwrap_or(0) + messages.len() as u64);
                total += producer
                    .send_all(messages, args.rate, |n| bar.set_position(base + n))
                    .await?;
            }
        }
    }
    bar.finish_and_clear();
    println!("produced {total} messages to {}", config.kafka.brokers);
    Ok(())
}
