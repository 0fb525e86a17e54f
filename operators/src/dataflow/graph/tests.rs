use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use ctrflow_schemas::{Epoch, EventTime};

use super::*;
use crate::dataflow::{VecCollector, drive};

fn batch(values: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).expect("batch")
}

fn values(b: &RecordBatch) -> Vec<i64> {
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64")
        .values()
        .to_vec()
}

/// Emits `n` one-row batches with a barrier after every `every`, or runs until stopped.
struct Counter {
    n: Option<i64>,
    every: i64,
    sent: Arc<AtomicUsize>,
}

#[async_trait]
impl Source for Counter {
    fn name(&self) -> String {
        "counter".into()
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        let mut i = 0;
        loop {
            if self.n.is_some_and(|n| i >= n) || ctx.stopping() {
                ctx.out.broadcast(Message::Barrier(Epoch(u64::MAX))).await?;
                return Ok(());
            }
            ctx.out.collect(0, batch(&[i])).await?;
            self.sent.fetch_add(1, Ordering::SeqCst);
            i += 1;
            if i % self.every == 0 {
                ctx.out.broadcast(Message::Barrier(Epoch(i as u64))).await?;
                ctx.out.broadcast(Message::Watermark(EventTime(i))).await?;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Doubles values; fails on `fail_on` if set.
struct Doubler {
    fail_on: Option<i64>,
}

#[async_trait]
impl Operator for Doubler {
    fn name(&self) -> String {
        "doubler".into()
    }
    async fn process_batch(
        &mut self,
        b: RecordBatch,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let v = values(&b);
        if self.fail_on.is_some_and(|f| v.contains(&f)) {
            return Err(OperatorError::Input {
                file: "test".into(),
                line: 0,
                reason: "boom".into(),
            });
        }
        out.collect(0, batch(&v.iter().map(|x| x * 2).collect::<Vec<_>>()))
            .await
    }
}

/// Records what it sees; buffers batches until a barrier ("flush") and can be slow.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    processed: Arc<AtomicUsize>,
    slow: bool,
}

#[async_trait]
impl Operator for Recorder {
    fn name(&self) -> String {
        "recorder".into()
    }
    async fn process_batch(
        &mut self,
        b: RecordBatch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        if self.slow {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        self.processed.fetch_add(1, Ordering::SeqCst);
        self.log
            .lock()
            .expect("lock")
            .push(format!("b{:?}", values(&b)));
        Ok(())
    }
    async fn on_barrier(
        &mut self,
        e: Epoch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        self.log.lock().expect("lock").push(format!("flush{}", e.0));
        Ok(())
    }
    async fn on_end(&mut self, _out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.log.lock().expect("lock").push("end".into());
        Ok(())
    }
}

#[tokio::test]
async fn batches_and_control_flow_through_in_order() {
    let mut g = Graph::new(4);
    let sent = Arc::new(AtomicUsize::new(0));
    let s = g.source(Counter {
        n: Some(4),
        every: 2,
        sent,
    });
    let d = g.operator(Doubler { fail_on: None }, 1);
    let rec = Recorder::default();
    let r = g.operator(rec.clone(), 0);
    g.connect(s, 0, d).expect("s->d");
    g.connect(d, 0, r).expect("d->r");
    g.start().expect("start").join().await.expect("run");
    let log = rec.log.lock().expect("lock").clone();
    assert_eq!(
        log,
        [
            "b[0]",
            "b[2]",
            "flush2",
            "b[4]",
            "b[6]",
            "flush4",
            &format!("flush{}", u64::MAX),
            "end"
        ]
    );
}

/// Emits one batch and ends the stream itself, as the `Source` contract asks.
struct EndsItself;

#[async_trait]
impl Source for EndsItself {
    fn name(&self) -> String {
        "ends-itself".into()
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        ctx.out.collect(0, batch(&[7])).await?;
        ctx.out.broadcast(Message::End).await
    }
}

#[tokio::test]
async fn a_source_that_sends_end_itself_ends_the_graph_once() {
    let mut g = Graph::new(1);
    let s = g.source(EndsItself);
    let rec = Recorder::default();
    let r = g.operator(rec.clone(), 0);
    g.connect(s, 0, r).expect("s->r");
    // The runtime must not send a second End to an operator that already finished.
    g.start().expect("start").join().await.expect("run");
    assert_eq!(*rec.log.lock().expect("lock"), ["b[7]", "end"]);
}

#[tokio::test]
async fn an_error_names_the_operator_and_stops_the_graph() {
    let mut g = Graph::new(2);
    let s = g.source(Counter {
        n: None,
        every: 10,
        sent: Arc::default(),
    });
    let d = g.operator(Doubler { fail_on: Some(3) }, 1);
    let r = g.operator(Recorder::default(), 0);
    g.connect(s, 0, d).expect("s->d");
    g.connect(d, 0, r).expect("d->r");
    let err = g.start().expect("start").join().await.expect_err("fails");
    let text = err.to_string();
    assert!(
        text.contains("`doubler`") && text.contains("boom"),
        "{text}"
    );
}

#[tokio::test]
async fn bounded_channels_apply_backpressure() {
    let capacity = 2;
    let mut g = Graph::new(capacity);
    let sent = Arc::new(AtomicUsize::new(0));
    let s = g.source(Counter {
        n: Some(60),
        every: 1000,
        sent: sent.clone(),
    });
    let rec = Recorder {
        slow: true,
        ..Recorder::default()
    };
    let processed = rec.processed.clone();
    let r = g.operator(rec, 0);
    g.connect(s, 0, r).expect("s->r");
    let handle = g.start().expect("start");
    let mut max_ahead = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let ahead = sent.load(Ordering::SeqCst) - processed.load(Ordering::SeqCst);
        max_ahead = max_ahead.max(ahead);
    }
    handle.join().await.expect("run");
    // In flight: the channel, the message being processed and the one being sent.
    assert!(
        max_ahead <= capacity + 2,
        "source ran {max_ahead} batches ahead"
    );
    assert_eq!(processed.load(Ordering::SeqCst), 60);
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_epoch_and_ends() {
    let mut g = Graph::new(4);
    let s = g.source(Counter {
        n: None,
        every: 1000,
        sent: Arc::default(),
    });
    let rec = Recorder::default();
    let r = g.operator(rec.clone(), 0);
    g.connect(s, 0, r).expect("s->r");
    let handle = g.start().expect("start");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    handle.shutdown();
    handle.join().await.expect("clean exit");
    let log = rec.log.lock().expect("lock").clone();
    assert!(log.len() > 2, "{log:?}");
    assert_eq!(
        &log[log.len() - 2..],
        [format!("flush{}", u64::MAX), "end".to_string()]
    );
}

#[tokio::test]
async fn invalid_graphs_are_rejected() {
    let mut g = Graph::new(1);
    let s = g.source(Counter {
        n: Some(1),
        every: 1,
        sent: Arc::default(),
    });
    let r = g.operator(Recorder::default(), 0);
    assert!(
        g.connect(r, 0, s).is_err(),
        "a sink has no port 0 and a source no input"
    );
    let orphan = g.operator(Recorder::default(), 0);
    g.connect(s, 0, r).expect("s->r");
    assert!(g.connect(s, 0, r).is_err(), "second upstream");
    let err = g.start().err().expect("orphan operator");
    assert!(err.to_string().contains("no upstream"), "{err}");
    let _ = orphan;
}

#[tokio::test]
async fn drive_applies_the_same_forwarding_rules() {
    let mut op = Doubler { fail_on: None };
    let out: VecCollector = drive(
        &mut op,
        [
            Message::Batch(batch(&[1, 2])),
            Message::Barrier(Epoch(1)),
            Message::End,
        ],
        1,
    )
    .await
    .expect("drive");
    assert_eq!(out.rows(0), 2);
    assert_eq!(values(out.batches(0)[0]), [2, 4]);
    assert!(matches!(out.ports[0][1], Message::Barrier(Epoch(1))));
    assert!(matches!(out.ports[0][2], Message::End));
}
