//! The dataflow runtime: a DAG of async operators (tokio tasks) joined by bounded channels.
//!
//! What flows on a channel is a [`Message`]: a data batch (`RecordBatch`) or control (a
//! watermark, a checkpoint barrier of an epoch, end of stream). Bounded channels are the
//! backpressure: a slow sink stalls its upstream instead of growing memory.
//!
//! Roles have one narrow trait each: a [`Source`] produces messages until told to stop; an
//! [`Operator`] implements one required method, [`Operator::process_batch`], and optional hooks
//! for watermarks, barriers and end of stream that default to doing nothing. The runtime forwards
//! every control message downstream *after* the operator's hook returned, so a sink that flushes
//! in `on_barrier` has finished before the barrier travels on.
//!
//! Topology: every node has at most one upstream (sources fan out to any number of operators,
//! operators fan out through numbered output ports). With a single upstream, barriers are aligned
//! by construction. Errors carry the name of the operator that failed, and the first error stops
//! the whole graph.

mod collector;
mod graph;
mod map;

pub use collector::{Collector, Output, VecCollector};
pub use graph::{Graph, GraphHandle, NodeId};
pub use map::MapBatches;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use ctrflow_schemas::{Epoch, EventTime};

use crate::OperatorError;

/// What travels between operators.
#[derive(Debug, Clone)]
pub enum Message {
    /// A batch of rows.
    Batch(RecordBatch),
    /// Event time up to which the upstream has seen everything it will send (minus lateness).
    Watermark(EventTime),
    /// Checkpoint barrier: everything before it belongs to `epoch`.
    Barrier(Epoch),
    /// No more messages will follow.
    End,
}

/// Why a source should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Keep running.
    Running,
    /// Graceful shutdown (SIGINT/SIGTERM): finish the open epoch, commit, end.
    Shutdown,
}

/// What a source sees of the runtime: where to emit and whether to stop.
pub struct SourceContext {
    /// The source's outputs.
    pub out: Output,
    /// Flips to [`StopReason::Shutdown`] on graceful shutdown.
    pub stop: tokio::sync::watch::Receiver<StopReason>,
}

impl SourceContext {
    /// True once a graceful shutdown was requested.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow() == StopReason::Shutdown
    }
}

/// A producer of messages (Kafka, Parquet, a generator). It must emit [`Message::End`] when it
/// finishes (the runtime sends it if the source returns without doing so).
#[async_trait]
pub trait Source: Send + 'static {
    /// Name used in logs, metrics and errors.
    fn name(&self) -> String;

    /// Produces messages into `ctx.out` until the input is exhausted or `ctx.stop` says stop.
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError>;
}

/// A transform or sink. Only [`process_batch`](Operator::process_batch) is required.
///
/// Invariants the runtime guarantees: calls are sequential (never concurrent) and in channel
/// order; a control message reaches downstream only after the hook for it returned `Ok`.
#[async_trait]
pub trait Operator: Send + 'static {
    /// Name used in logs, metrics and errors.
    fn name(&self) -> String;

    /// Handles one batch, emitting results through `out`.
    async fn process_batch(
        &mut self,
        batch: RecordBatch,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError>;

    /// Called on a watermark before it is forwarded.
    async fn on_watermark(
        &mut self,
        _watermark: EventTime,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called on a checkpoint barrier before it is forwarded: flush what belongs to `epoch`.
    async fn on_barrier(
        &mut self,
        _epoch: Epoch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called once at end of stream before `End` is forwarded.
    async fn on_end(&mut self, _out: &mut dyn Collector) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Drives `op` over `messages` with a [`VecCollector`] (for unit tests of operators): every
/// message goes through the same hooks and forwarding rules as in the runtime.
pub async fn drive<O: Operator + ?Sized>(
    op: &mut O,
    messages: impl IntoIterator<Item = Message>,
    ports: usize,
) -> Result<VecCollector, OperatorError> {
    let mut out = VecCollector::new(ports);
    for m in messages {
        graph::dispatch(op, m, &mut out).await?;
    }
    Ok(out)
}
