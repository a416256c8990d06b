//! A deadline for a future that arms its timer only if the future suspends.
//!
//! Guest execution is preempted by epoch interruption; this backstop covers time spent awaiting
//! host work (a hung backend). Most connector calls finish in their first poll, so registering a
//! timer up front would cost every call a trip through the timer wheel for nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// Resolves to `Some(output)`, or `None` if `deadline` passed first.
pub(crate) struct Backstop<F> {
    future: Pin<Box<F>>,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<F: Future> Backstop<F> {
    pub(crate) fn new(future: F, deadline: Instant) -> Self {
        Self { future: Box::pin(future), deadline, sleep: None }
    }
}

impl<F: Future> Future for Backstop<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        let deadline = self.deadline;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn ready_future_needs_no_timer() {
        let b = Backstop::new(async { 7 }, Instant::now());
        assert_eq!(b.await, Some(7));
    }

    #[tokio::test]
    async fn pending_future_times_out() {
        let b = Backstop::new(std::future::pending::<()>(), Instant::now() + Duration::from_millis(20));
        assert_eq!(b.await, None);
    }

    #[tokio::test]
    async fn slow_future_finishes_before_deadline() {
        let b = Backstop::new(
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                1
            },
            Instant::now() + Duration::from_secs(5),
        );
        assert_eq!(b.await, Some(1));
    }
}
