//! One increment's hand-off between its caller and the writer, in one allocation: who owns the
//! increment, and the writer's answer.
//!
//! Ownership is one compare-and-swap: the writer [`Answerer::take`]s a queued increment into a
//! batch, or the caller [`Handoff::withdraw`]s it at its deadline; whichever comes first wins, so
//! a `504` can never be given for an increment that was counted. (A `oneshot` channel plus a
//! shared flag did the same with two allocations per POST, and the writer's batches turned them
//! into bursts that overflow the allocator's per-thread cache.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

pub struct Handoff<T> {
    claim: AtomicU8,
    answer: Mutex<Answer<T>>,
}

enum Answer<T> {
    Waiting(Option<Waker>),
    Given(T),
    /// The writer dropped its side unanswered (stopped or aborted).
    Gone,
    /// The caller has read the answer.
    Read,
}

/// What the caller learns.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    Answered(T),
    /// The writer went away before taking the increment: never counted.
    NeverTaken,
    /// The writer went away after taking it into a batch: its statement may have committed.
    Abandoned,
}

/// The writer's side: answers once; dropped unanswered, it tells the caller so.
pub struct Answerer<T> {
    handoff: Arc<Handoff<T>>,
    answered: bool,
}

impl<T> Handoff<T> {
    /// The caller's side and the writer's.
    pub fn new() -> (Arc<Self>, Answerer<T>) {
        let handoff = Arc::new(Self {
            claim: AtomicU8::new(QUEUED),
            answer: Mutex::new(Answer::Waiting(None)),
        });
        let answerer = Answerer {
            handoff: Arc::clone(&handoff),
            answered: false,
        };
        (handoff, answerer)
    }

    /// Withdraws a queued increment; false when the writer has already taken it.
    pub fn withdraw(&self) -> bool {
        self.claim
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Resolves once the writer answers or goes away.
    pub fn outcome(&self) -> impl Future<Output = Outcome<T>> + '_ {
        OutcomeFuture(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answer<T>> {
        // A panic while holding this lock leaves a plain value behind: nothing to repair.
        self.answer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct OutcomeFuture<'a, T>(&'a Handoff<T>);

impl<T> Future for OutcomeFuture<'_, T> {
    type Output = Outcome<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        let handoff = self.0;
        let mut answer = handoff.lock();
        match std::mem::replace(&mut *answer, Answer::Read) {
            Answer::Given(value) => Poll::Ready(Outcome::Answered(value)),
            Answer::Gone => Poll::Ready(match handoff.claim.load(Ordering::Acquire) {
                TAKEN => Outcome::Abandoned,
                _ => Outcome::NeverTaken,
            }),
            Answer::Waiting(waker) => {
                let waker = match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => waker,
                    _ => cx.waker().clone(),
                };
                *answer = Answer::Waiting(Some(waker));
                Poll::Pending
            }
            Answer::Read => panic!("handoff outcome polled after it resolved"),
        }
    }
}

impl<T> Answerer<T> {
    /// Takes a queued increment into a batch; false when its caller has withdrawn it.
    pub fn take(&self) -> bool {
        self.handoff
            .claim
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn answer(mut self, value: T) {
        self.settle(Answer::Given(value));
        self.answered = true;
    }

    /// Settles a waiting hand-off (once: the drop after an answer changes nothing).
    fn settle(&self, settled: Answer<T>) {
        let mut answer = self.handoff.lock();
        let Answer::Waiting(waker) = std::mem::replace(&mut *answer, settled) else {
            unreachable!("only the answerer settles, once")
        };
        drop(answer);
        // Woken outside the lock: the caller's poll takes it next.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Answerer<T> {
    fn drop(&mut self) {
        if !self.answered {
            self.settle(Answer::Gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_caller_gets_the_writers_answer() {
        let (handoff, answerer) = Handoff::new();
        assert!(answerer.take());
        let writer = tokio::spawn(async move { answerer.answer(7) });
        assert_eq!(handoff.outcome().await, Outcome::Answered(7));
        writer.await.unwrap();
    }

    #[test]
    fn taking_and_withdrawing_exclude_each_other() {
        let (handoff, answerer) = Handoff::<()>::new();
        assert!(handoff.withdraw());
        assert!(
            !answerer.take(),
            "a withdrawn increment must not be counted"
        );

        let (handoff, answerer) = Handoff::<()>::new();
        assert!(answerer.take());
        assert!(
            !handoff.withdraw(),
            "a taken increment cannot be withdrawn (it may count)"
        );
    }

    #[tokio::test]
    async fn a_writer_gone_before_taking_means_never_counted() {
        let (handoff, answerer) = Handoff::<u8>::new();
        drop(answerer);
        assert_eq!(handoff.outcome().await, Outcome::NeverTaken);
    }

    #[tokio::test]
    async fn a_writer_gone_after_taking_means_it_may_have_counted() {
        let (handoff, answerer) = Handoff::<u8>::new();
        assert!(answerer.take());
        let outcome = handoff.outcome();
        tokio::pin!(outcome);
        assert!(futures_poll_once(outcome.as_mut()).await.is_pending());
        drop(answerer);
        assert_eq!(outcome.await, Outcome::Abandoned);
    }

    async fn futures_poll_once<F: Future + Unpin>(mut f: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut f).poll(cx))).await
    }
}
