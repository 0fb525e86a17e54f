//! Where operators emit: numbered output ports backed by bounded channels in the runtime, or by
//! vectors in unit tests.

use arrow::array::RecordBatch;
use async_trait::async_trait;
use tokio::sync::mpsc;

use super::Message;
use crate::OperatorError;

/// The emitting side of an operator.
#[async_trait]
pub trait Collector: Send {
    /// Sends `batch` to output `port` (waits when the downstream channel is full).
    async fn collect(&mut self, port: usize, batch: RecordBatch) -> Result<(), OperatorError>;

    /// Sends a control message (or a batch) to every output.
    async fn broadcast(&mut self, message: Message) -> Result<(), OperatorError>;
}

/// The runtime's collector: for each port, the senders of the operators connected to it.
#[derive(Debug, Default, Clone)]
pub struct Output {
    ports: Vec<Vec<mpsc::Sender<Message>>>,
    name: String,
    /// Whether end of stream was sent (the runtime then does not send it again).
    ended: bool,
}

impl Output {
    pub(crate) fn new(name: String, ports: Vec<Vec<mpsc::Sender<Message>>>) -> Self {
        Output {
            ports,
            name,
            ended: false,
        }
    }

    /// Whether [`Message::End`] went out through this output.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    async fn send(
        name: &str,
        tx: &mpsc::Sender<Message>,
        message: Message,
    ) -> Result<(), OperatorError> {
        tx.send(message).await.map_err(|_| {
            OperatorError::Disconnected(format!("{name}: a downstream operator stopped early"))
        })
    }
}

#[async_trait]
impl Collector for Output {
    async fn collect(&mut self, port: usize, batch: RecordBatch) -> Result<(), OperatorError> {
        let Some(targets) = self.ports.get(port) else {
            return Err(OperatorError::Internal(format!(
                "{}: emitted to port {port} but has {} ports",
                self.name,
                self.ports.len()
            )));
        };
        if let Some((last, rest)) = targets.split_last() {
            for tx in rest {
                Output::send(&self.name, tx, Message::Batch(batch.clone())).await?;
            }
            Output::send(&self.name, last, Message::Batch(batch)).await?;
        }
        Ok(())
    }

    async fn broadcast(&mut self, message: Message) -> Result<(), OperatorError> {
        let end = matches!(message, Message::End);
        for targets in &self.ports {
            for tx in targets {
                Output::send(&self.name, tx, message.clone()).await?;
            }
        }
        self.ended |= end;
        Ok(())
    }
}

/// A collector that records everything per port, for unit tests.
#[derive(Debug, Default)]
pub struct VecCollector {
    /// Messages per port, in emission order.
    pub ports: Vec<Vec<Message>>,
}

impl VecCollector {
    /// A collector with `ports` outputs.
    pub fn new(ports: usize) -> Self {
        VecCollector {
            ports: (0..ports.max(1)).map(|_| Vec::new()).collect(),
        }
    }

    /// The batches emitted on `port`.
    pub fn batches(&self, port: usize) -> Vec<&RecordBatch> {
        self.ports
            .get(port)
            .map(|msgs| {
                msgs.iter()
                    .filter_map(|m| match m {
                        Message::Batch(b) => Some(b),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Total rows emitted on `port`.
    pub fn rows(&self, port: usize) -> usize {
        self.batches(port).iter().map(|b| b.num_rows()).sum()
    }
}

#[async_trait]
impl Collector for VecCollector {
    async fn collect(&mut self, port: usize, batch: RecordBatch) -> Result<(), OperatorError> {
        let n = self.ports.len();
        self.ports
            .get_mut(port)
            .ok_or_else(|| OperatorError::Internal(format!("port {port} of {n}")))?
            .push(Message::Batch(batch));
        Ok(())
    }

    async fn broadcast(&mut self, message: Message) -> Result<(), OperatorError> {
        for port in &mut self.ports {
            port.push(message.clone());
        }
        Ok(())
    }
}
