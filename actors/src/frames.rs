//! The channel a turn's SSE frames travel to the HTTP relay. A stream's frames are appended
//! to one byte buffer, and the relay takes everything appended since its last read as one
//! chunk. A model read usually brings several events, so a burst of frames costs one
//! wake-up of the relay and one HTTP chunk, and no frame is an allocation of its own built
//! on the turn's thread and freed on the relay's.
//!
//! Bounded like a channel of frames: a sender waits while `max_frames` frames are unread (a
//! slow client holds back its turn, not the server's memory). Senders notice the receiver
//! gone (the client left); the receiver ends once every sender is gone.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// Room for a short answer's frames before the buffer grows (a text delta's frame is about
/// 170 bytes).
const INITIAL_CAPACITY: usize = 4096;

/// The receiver is gone: nobody reads the frames any more.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// A stream of frames: the sending half (the turn's) and the receiving half (the relay's).
pub fn channel(max_frames: usize) -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: BytesMut::with_capacity(INITIAL_CAPACITY),
            frames: 0,
            senders: 1,
            receiving: true,
            receiver_waker: None,
        }),
        changed: Notify::new(),
        max_frames: max_frames.max(1),
    });
    (
        FrameSender {
            shared: shared.clone(),
        },
        FrameReceiver { shared },
    )
}

struct Shared {
    state: Mutex<State>,
    /// Wakes senders waiting for room, or for the receiver to go.
    changed: Notify,
    max_frames: usize,
}

struct State {
    /// Frames appended and not yet taken.
    buf: BytesMut,
    /// How many frames `buf` holds.
    frames: usize,
    /// Strong senders alive.
    senders: usize,
    /// The receiver is alive.
    receiving: bool,
    /// The receiver waiting for frames.
    receiver_waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the buffer whole (appends are single calls).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Appends frames; cloned for each part of a turn that sends.
pub struct FrameSender {
    shared: Arc<Shared>,
}

/// A sender that does not keep the stream open (see [`FrameSender::downgrade`]).
pub struct WeakFrameSender {
    shared: Arc<Shared>,
}

/// Takes the frames appended so far, as one chunk.
pub struct FrameReceiver {
    shared: Arc<Shared>,
}

impl FrameSender {
    /// Appends `frame` once fewer than `max_frames` are unread; `Closed` once the receiver is
    /// gone (then or while waiting).
    pub async fn send(&self, frame: &[u8]) -> Result<(), Closed> {
        if let Some(sent) = self.try_append(frame) {
            return sent;
        }
        loop {
            // Registered before the check, so a take between the two is not missed.
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(sent) = self.try_append(frame) {
                return sent;
            }
            changed.await;
        }
    }

    /// Appends `frame` unless `max_frames` are unread (then it is dropped) or the receiver
    /// is gone.
    pub fn try_send(&self, frame: &[u8]) -> Result<(), Closed> {
        self.try_append(frame).unwrap_or(Ok(()))
    }

    /// `None` when full.
    fn try_append(&self, frame: &[u8]) -> Option<Result<(), Closed>> {
        let mut state = self.shared.lock();
        if !state.receiving {
            return Some(Err(Closed));
        }
        if state.frames >= self.shared.max_frames {
            return None;
        }
        state.buf.extend_from_slice(frame);
        state.frames += 1;
        let waker = state.receiver_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Some(Ok(()))
    }

    /// Resolves once the receiver is gone.
    pub async fn closed(&self) {
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.is_closed() {
                return;
            }
            changed.await;
        }
    }

    pub fn is_closed(&self) -> bool {
        !self.shared.lock().receiving
    }

    /// A sender that can send while another keeps the stream open, without keeping it open
    /// itself.
    pub fn downgrade(&self) -> WeakFrameSender {
        WeakFrameSender {
            shared: self.shared.clone(),
        }
    }
}

impl Clone for FrameSender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        FrameSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let waker = (state.senders == 0)
            .then(|| state.receiver_waker.take())
            .flatten();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl WeakFrameSender {
    /// A sender, while a strong one keeps the stream open.
    pub fn upgrade(&self) -> Option<FrameSender> {
        let mut state = self.shared.lock();
        (state.senders > 0).then(|| {
            state.senders += 1;
            FrameSender {
                shared: self.shared.clone(),
            }
        })
    }
}

impl FrameReceiver {
    /// Every frame appended since the last take, as one chunk; `None` once every sender is
    /// gone and nothing is left.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.shared.lock();
        if !state.buf.is_empty() {
            let was_full = state.frames >= self.shared.max_frames;
            state.frames = 0;
            let chunk = state.buf.split().freeze();
            drop(state);
            if was_full {
                self.shared.changed.notify_waiters();
            }
            return Poll::Ready(Some(chunk));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        match &state.receiver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub async fn recv(&mut self) -> Option<Bytes> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiving = false;
        state.buf = BytesMut::new();
        state.frames = 0;
        drop(state);
        self.shared.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn frames_sent_before_a_read_arrive_as_one_chunk_in_order() {
        let (tx, mut rx) = channel(8);
        tx.send(b"data: 1\n\n").await.unwrap();
        tx.send(b"data: 2\n\n").await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), &b"data: 1\n\ndata: 2\n\n"[..]);
        tx.send(b"data: 3\n\n").await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await.unwrap(), &b"data: 3\n\n"[..]);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_and_by_the_last_sender_leaving() {
        let (tx, mut rx) = channel(8);
        let other = tx.clone();
        let reader = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.send(b"a").await.unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        drop(other);
        let (first, end) = reader.await.unwrap();
        assert_eq!(first.unwrap(), &b"a"[..]);
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn a_sender_waits_while_max_frames_are_unread() {
        let (tx, mut rx) = channel(2);
        tx.send(b"1").await.unwrap();
        tx.send(b"2").await.unwrap();
        assert_eq!(tx.try_send(b"dropped"), Ok(()));
        let third = tx.send(b"3");
        let mut third = std::pin::pin!(third);
        let waited = tokio::time::timeout(Duration::from_millis(20), third.as_mut()).await;
        assert!(waited.is_err(), "a full stream holds its sender back");
        assert_eq!(rx.recv().await.unwrap(), &b"12"[..]);
        third.await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), &b"3"[..]);
    }

    #[tokio::test]
    async fn senders_notice_the_receiver_gone_even_while_waiting_for_room() {
        let (tx, rx) = channel(1);
        tx.send(b"1").await.unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(b"2").await }
        });
        let closed = tokio::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!tx.is_closed());
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(Closed));
        closed.await.unwrap();
        assert!(tx.is_closed());
        assert_eq!(tx.send(b"3").await, Err(Closed));
        assert_eq!(tx.try_send(b"3"), Err(Closed));
    }

    #[tokio::test]
    async fn a_weak_sender_sends_only_while_a_strong_one_keeps_the_stream_open() {
        let (tx, mut rx) = channel(4);
        let weak = tx.downgrade();
        weak.upgrade().unwrap().try_send(b"error").unwrap();
        drop(tx);
        assert!(weak.upgrade().is_none());
        assert_eq!(rx.recv().await.unwrap(), &b"error"[..]);
        assert_eq!(rx.recv().await, None);
    }
}
