//! openraft's async runtime here: tokio's, but with channels whose slots hold a box.
//!
//! openraft makes four bounded channels per group (its API, install-snapshot, notification
//! and state-machine queues), and tokio allocates a channel's first block of 32 slots when the
//! channel is made, each slot as large as the largest message it can carry. With 10,000 groups
//! on a node those first blocks were a quarter of what an idle replica costs (ARCHITECTURE
//! §16, "What a replica costs in memory"), for queues that rarely hold more than a message or
//! two. A boxed slot is one pointer: the message is allocated when sent, and freed when received.
//!
//! Everything else is openraft's tokio runtime unchanged.

use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::{
    AsyncRuntime, Mpsc, MpscReceiver, MpscSender, MpscWeakSender, SendError, TryRecvError,
};
use openraft::OptionalSend;
use openraft_rt_tokio::TokioRuntime;
use tokio::sync::mpsc;

/// tokio, with [`BoxedMpsc`] channels.
#[derive(Debug)]
pub struct KinesinRuntime(TokioRuntime);

impl AsyncRuntime for KinesinRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <TokioRuntime as AsyncRuntime>::ThreadLocalRng;

    #[inline]
    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    #[inline]
    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    #[inline]
    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    #[inline]
    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    #[inline]
    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    #[inline]
    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    #[inline]
    fn thread_rng() -> Self::ThreadLocalRng {
        TokioRuntime::thread_rng()
    }

    type Mpsc = BoxedMpsc;
    type Watch = <TokioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        KinesinRuntime(TokioRuntime::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }
}

/// tokio's bounded channels carrying each message in a box.
pub struct BoxedMpsc;

pub struct BoxedSender<T>(mpsc::Sender<Box<T>>);
pub struct BoxedReceiver<T>(mpsc::Receiver<Box<T>>);
pub struct BoxedWeakSender<T>(mpsc::WeakSender<Box<T>>);

impl<T> Clone for BoxedSender<T> {
    fn clone(&self) -> Self {
        BoxedSender(self.0.clone())
    }
}

impl<T> Clone for BoxedWeakSender<T> {
    fn clone(&self) -> Self {
        BoxedWeakSender(self.0.clone())
    }
}

impl Mpsc for BoxedMpsc {
    type Sender<T: OptionalSend> = BoxedSender<T>;
    type Receiver<T: OptionalSend> = BoxedReceiver<T>;
    type WeakSender<T: OptionalSend> = BoxedWeakSender<T>;

    fn channel<T: OptionalSend>(buffer: usize) -> (BoxedSender<T>, BoxedReceiver<T>) {
        let (tx, rx) = mpsc::channel(buffer);
        (BoxedSender(tx), BoxedReceiver(rx))
    }
}

impl<T: OptionalSend> MpscSender<BoxedMpsc, T> for BoxedSender<T> {
    #[inline]
    async fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.0
            .send(Box::new(msg))
            .await
            .map_err(|refused| SendError(*refused.0))
    }

    #[inline]
    fn downgrade(&self) -> BoxedWeakSender<T> {
        BoxedWeakSender(self.0.downgrade())
    }
}

impl<T: OptionalSend> MpscReceiver<T> for BoxedReceiver<T> {
    #[inline]
    async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|boxed| *boxed)
    }

    #[inline]
    fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map(|boxed| *boxed).map_err(|e| match e {
            mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
            mpsc::error::TryRecvError::Disconnected => TryRecvError::Disconnected,
        })
    }
}

impl<T: OptionalSend> MpscWeakSender<BoxedMpsc, T> for BoxedWeakSender<T> {
    #[inline]
    fn upgrade(&self) -> Option<BoxedSender<T>> {
        self.0.upgrade().map(BoxedSender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// openraft's own conformance suite for runtimes: spawning, timers, and every channel kind.
    #[test]
    fn the_runtime_passes_openrafts_suite() {
        openraft_rt::testing::Suite::<KinesinRuntime>::test_all();
    }
}
