//! `ctrflow import movielens`.

use ctrflow_operators::movielens::{MovielensOptions, import_movielens};

use crate::cli::MovielensArgs;
use crate::config::CtrflowConfig;
use crate::progress;

pub async fn movielens(args: MovielensArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    if let Some(genres) = args.ad_genres {
        config.movielens.ad_genres = genres;
    }
    config.validate()?;
    let storage = super::open_store(args.store, &mut config)?;
    let options = MovielensOptions {
        ad_genres: config.movielens.ad_genres.clone(),
        like_threshold: config.movielens.like_threshold,
        max_seq_len: config.schema.max_seq_len,
        history: config.movielens.history,
        history_domains: config.movielens.history_domains,
        content: config.movielens.content,
    };
    let bar = progress::bar(0, "ratings");
    bar.set_message("importing");
    let summary = import_movielens(
        &args.dir,
        &storage,
        &config.schema.event_schema(),
        &options,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish_and_clear();
    let rows = |d| summary.archive.rows.get(&d).copied().unwrap_or(0);
    tracing::info!(
        dataset = %summary.dataset,
        ratings = summary.ratings,
        likes = summary.likes,
        natural = rows(ctrflow_schemas::Domain::Natural),
        ad = rows(ctrflow_schemas::Domain::Ad),
        files = summary.archive.files,
        "import finished"
    );
    println!(
        "imported {} ({} ratings, {} likes) into {}: natural {} events, ad {} events, days {}..={}, \
         {} files",
        summary.dataset,
        summary.ratings,
        summary.likes,
        config.store.url,
        rows(ctrflow_schemas::Domain::Natural),
        rows(ctrflow_schemas::Domain::Ad),
        summary.dates.0,
        summary.dates.1,
        summary.archive.files
    );
    Ok(())
}
