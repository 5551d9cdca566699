//! Futures for the proxy phases whose work is done when they are called.
//!
//! pingora's phases are `async_trait` methods: each call returns a boxed future, and an
//! `async fn` body becomes a state machine allocated for every call, every request, even
//! when it never waits. A phase that never waits (forwarding's header rewrite, the body
//! count, logging) does its work in the call and returns one of these, which hold nothing
//! and so allocate nothing; so does `request_filter` when its decision needed no waiting
//! ([`proceed`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pingora::Result;

/// The future an `async_trait` phase returns.
pub type Phase<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The phase's answer, already known. Success is a unit struct, which a box does not
/// allocate for; an error (rare) is boxed with it.
pub fn finished<'a>(result: Result<()>) -> Phase<'a, Result<()>> {
    match result {
        Ok(()) => Box::pin(Succeeded),
        Err(error) => Box::pin(std::future::ready(Err(error))),
    }
}

/// `request_filter`'s answer for a request that goes on to the upstream, already known.
pub fn proceed<'a>() -> Phase<'a, Result<bool>> {
    Box::pin(Proceed)
}

/// A phase without an answer, done.
pub fn done<'a>() -> Phase<'a, ()> {
    Box::pin(Done)
}

struct Succeeded;

impl Future for Succeeded {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Proceed;

impl Future for Proceed {
    type Output = Result<bool>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<bool>> {
        Poll::Ready(Ok(false))
    }
}

struct Done;

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_phase_answers_what_it_was_given() {
        assert!(finished(Ok(())).await.is_ok());
        let refused = pingora::Error::explain(pingora::ErrorType::HTTPStatus(413), "too big");
        let answer = finished(Err(refused)).await.unwrap_err();
        assert_eq!(answer.etype(), &pingora::ErrorType::HTTPStatus(413));
        assert!(!proceed().await.unwrap());
        done().await;
    }
}
