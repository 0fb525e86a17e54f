//! Building and running a dataflow graph.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Collector, Message, Operator, Output, Source, SourceContext, StopReason};
use crate::OperatorError;

/// A node of a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(usize);

enum Node {
    Source(Box<dyn Source>),
    Operator { op: Box<dyn Operator>, ports: usize },
}

/// A DAG under construction. See the module docs of [`crate::dataflow`] for its rules.
pub struct Graph {
    nodes: Vec<Node>,
    edges: Vec<(NodeId, usize, NodeId)>,
    channel_capacity: usize,
}

impl Graph {
    /// An empty graph whose channels hold at most `channel_capacity` messages each.
    pub fn new(channel_capacity: usize) -> Self {
        Graph {
            nodes: Vec::new(),
            edges: Vec::new(),
            channel_capacity: channel_capacity.max(1),
        }
    }

    /// Adds a source (it has one output port, 0).
    pub fn source(&mut self, source: impl Source) -> NodeId {
        self.nodes.push(Node::Source(Box::new(source)));
        NodeId(self.nodes.len() - 1)
    }

    /// Adds an operator with `ports` output ports (0 for a pure sink).
    pub fn operator(&mut self, op: impl Operator, ports: usize) -> NodeId {
        self.nodes.push(Node::Operator {
            op: Box::new(op),
            ports,
        });
        NodeId(self.nodes.len() - 1)
    }

    fn name(&self, id: NodeId) -> String {
        match &self.nodes[id.0] {
            Node::Source(s) => s.name(),
            Node::Operator { op, .. } => op.name(),
        }
    }

    /// Connects output `port` of `from` to the input of `to`.
    pub fn connect(&mut self, from: NodeId, port: usize, to: NodeId) -> Result<(), OperatorError> {
        let ports = match &self.nodes[from.0] {
            Node::Source(_) => 1,
            Node::Operator { ports, .. } => *ports,
        };
        let bad = |reason: String| Err(OperatorError::Internal(format!("invalid graph: {reason}")));
        if port >= ports {
            return bad(format!("`{}` has no output port {port}", self.name(from)));
        }
        if matches!(self.nodes[to.0], Node::Source(_)) {
            return bad(format!("source `{}` cannot have an input", self.name(to)));
        }
        if self.edges.iter().any(|&(_, _, t)| t == to) {
            return bad(format!("`{}` already has an upstream", self.name(to)));
        }
        self.edges.push((from, port, to));
        Ok(())
    }

    /// Validates the graph and spawns one task per node.
    pub fn start(self) -> Result<GraphHandle, OperatorError> {
        let (stop_tx, stop_rx) = watch::channel(StopReason::Running);
        let mut inputs: Vec<Option<(mpsc::Sender<Message>, mpsc::Receiver<Message>)>> = self
            .nodes
            .iter()
            .map(|n| match n {
                Node::Source(_) => None,
                Node::Operator { .. } => Some(mpsc::channel(self.channel_capacity)),
            })
            .collect();
        let mut outputs: Vec<Vec<Vec<mpsc::Sender<Message>>>> = self
            .nodes
            .iter()
            .map(|n| match n {
                Node::Source(_) => vec![Vec::new()],
                Node::Operator { ports, .. } => vec![Vec::new(); *ports],
            })
            .collect();
        for &(from, port, to) in &self.edges {
            if let Some((tx, _)) = &inputs[to.0] {
                outputs[from.0][port].push(tx.clone());
            }
        }
        let names: Vec<String> = (0..self.nodes.len())
            .map(|i| self.name(NodeId(i)))
            .collect();
        for (i, input) in inputs.iter().enumerate() {
            if input.is_some() && !self.edges.iter().any(|&(_, _, t)| t.0 == i) {
                return Err(OperatorError::Internal(format!(
                    "invalid graph: operator `{}` has no upstream",
                    names[i]
                )));
            }
        }
        let mut tasks = JoinSet::new();
        for (i, node) in self.nodes.into_iter().enumerate() {
            let name = names[i].clone();
            let out = Output::new(name.clone(), std::mem::take(&mut outputs[i]));
            match node {
                Node::Source(mut source) => {
                    let mut ctx = SourceContext {
                        out,
                        stop: stop_rx.clone(),
                    };
                    tasks.spawn(async move {
                        let result = async {
                            source.run(&mut ctx).await?;
                            if ctx.out.ended() {
                                Ok(())
                            } else {
                                ctx.out.broadcast(Message::End).await
                            }
                        }
                        .await;
                        (name, result)
                    });
                }
                Node::Operator { mut op, .. } => {
                    // Keep only the receiver: the senders live in the upstream's output.
                    let Some((_, mut rx)) = inputs[i].take() else {
                        continue;
                    };
                    let mut out = out;
                    tasks.spawn(async move {
                        let result = async {
                            while let Some(message) = rx.recv().await {
                                if dispatch(op.as_mut(), message, &mut out).await? {
                                    return Ok(());
                                }
                            }
                            Err(OperatorError::Disconnected(format!(
                                "{name}: upstream closed without end of stream"
                            )))
                        }
                        .await;
                        (name, result)
                    });
                }
            }
        }
        drop(inputs);
        Ok(GraphHandle { stop_tx, tasks })
    }
}

/// Runs the hook for one message and forwards control messages. Returns true at end of stream.
pub(crate) async fn dispatch<O: Operator + ?Sized>(
    op: &mut O,
    message: Message,
    out: &mut dyn Collector,
) -> Result<bool, OperatorError> {
    match message {
        Message::Batch(batch) => op.process_batch(batch, out).await?,
        Message::Watermark(t) => {
            op.on_watermark(t, out).await?;
            out.broadcast(Message::Watermark(t)).await?;
        }
        Message::Barrier(epoch) => {
            op.on_barrier(epoch, out).await?;
            out.broadcast(Message::Barrier(epoch)).await?;
        }
        Message::End => {
            op.on_end(out).await?;
            out.broadcast(Message::End).await?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// A running graph.
pub struct GraphHandle {
    stop_tx: watch::Sender<StopReason>,
    tasks: JoinSet<(String, Result<(), OperatorError>)>,
}

impl GraphHandle {
    /// Asks the sources to finish gracefully (finish the open epoch, commit, end the stream).
    pub fn shutdown(&self) {
        let _ = self.stop_tx.send(StopReason::Shutdown);
    }

    /// A handle that can request a graceful shutdown from elsewhere (e.g. a signal handler).
    pub fn shutdown_sender(&self) -> watch::Sender<StopReason> {
        self.stop_tx.clone()
    }

    /// Waits for every node. On the first failure the other nodes are cancelled and the error is
    /// returned naming the operator; a failure that is only a consequence of another one (a closed
    /// channel) is reported only when there is no root cause.
    pub async fn join(mut self) -> Result<(), OperatorError> {
        let mut root: Option<OperatorError> = None;
        let mut consequence: Option<OperatorError> = None;
        while let Some(joined) = self.tasks.join_next().await {
            let (name, result) = match joined {
                Ok(r) => r,
                Err(e) if e.is_cancelled() => continue,
                Err(e) => (
                    "<task>".to_string(),
                    Err(OperatorError::Internal(format!(
                        "operator task panicked: {e}"
                    ))),
                ),
            };
            let Err(error) = result else { continue };
            let named = OperatorError::Operator {
                name,
                source: Box::new(error),
            };
            let is_consequence = matches!(
                &named,
                OperatorError::Operator { source, .. }
                    if matches!(**source, OperatorError::Disconnected(_))
            );
            if is_consequence {
                consequence.get_or_insert(named);
            } else if root.is_none() {
                root = Some(named);
                self.tasks.abort_all();
            }
        }
        match (root, consequence) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
