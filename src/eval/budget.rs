//! [`CostBudget`]: `--max-cost`, the most an eval may spend, checked before every request.
//!
//! A request is refused, and the eval stopped, when what was spent plus what the request
//! would cost could pass the limit: its prompt (four bytes a token, at the input price) and
//! a reply as long as the longest so far (at the output price). A request to a model without
//! a price costs nothing by this count.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::model::{ChatRequest, ModelClient, ModelError, ModelFuture};
use crate::settings::Price;

/// What an eval has spent, against its limit.
#[derive(Debug)]
pub(crate) struct CostBudget {
    limit: f64,
    state: Mutex<Spent>,
    cancel: CancellationToken,
}

#[derive(Debug, Default)]
struct Spent {
    /// Spent, plus what requests in flight may still cost.
    committed: f64,
    longest_reply: u64,
    exhausted: bool,
}

impl CostBudget {
    pub(crate) fn new(limit: f64, cancel: CancellationToken) -> CostBudget {
        CostBudget {
            limit,
            state: Mutex::new(Spent::default()),
            cancel,
        }
    }

    /// The eval stopped because a request would have passed the limit.
    pub(crate) fn exhausted(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .exhausted
    }

    /// Reserve what `request` may cost, or refuse it (and stop the eval).
    fn reserve(&self, request: &ChatRequest, price: Option<Price>) -> Result<f64, String> {
        let Some(price) = price else { return Ok(0.0) };
        let prompt_bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let estimate = price.cost((prompt_bytes as u64).div_ceil(4), 0, state.longest_reply);
        if state.committed + estimate > self.limit {
            state.exhausted = true;
            self.cancel.cancel();
            return Err(format!(
                "--max-cost ${:.4}: spent ${:.4}, and the next request may cost ${estimate:.4}",
                self.limit, state.committed
            ));
        }
        state.committed += estimate;
        Ok(estimate)
    }

    /// Replace a reservation by what the request cost.
    fn settle(&self, reserved: f64, cost: f64, completion_tokens: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.committed += cost - reserved;
        state.longest_reply = state.longest_reply.max(completion_tokens);
    }
}

/// A client whose requests count against the budget.
pub(crate) struct Budgeted {
    pub(crate) client: Arc<dyn ModelClient>,
    pub(crate) budget: Arc<CostBudget>,
    pub(crate) price: Option<Price>,
}

impl ModelClient for Budgeted {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        Box::pin(async move {
            let reserved = self
                .budget
                .reserve(request, self.price)
                .map_err(|message| ModelError::Budget { message })?;
            let result = self.client.complete(request).await;
            let (cost, completion) = match (&result, self.price) {
                (Ok(completion), Some(price)) => {
                    let usage = completion.usage.unwrap_or_default();
                    let cached = completion
                        .raw
                        .pointer("/usage/prompt_tokens_details/cached_tokens")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0);
                    (
                        price.cost(usage.prompt_tokens, cached, usage.completion_tokens),
                        usage.completion_tokens,
                    )
                }
                _ => (0.0, 0),
            };
            self.budget.settle(reserved, cost, completion);
            result
        })
    }

    fn describe(&self) -> String {
        self.client.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_could_pass_the_limit_is_refused_and_stops_the_eval() {
        let cancel = CancellationToken::new();
        let budget = CostBudget::new(0.01, cancel.clone());
        let price = Price {
            input: 1.0,
            cached_input: None,
            output: 10.0,
        };
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![crate::model::Message::user("x".repeat(4000))],
            temperature: None,
            top_p: None,
            max_tokens: None,
            seed: None,
            response_format: None,
            stream: false,
        };
        // 1000 prompt tokens at $1 per million: $0.001 each.
        let reserved = budget.reserve(&request, Some(price)).expect("fits");
        assert!((reserved - 0.001).abs() < 1e-9);
        // The reply was 1000 tokens at $10 per million: $0.011 spent in all.
        budget.settle(reserved, 0.011, 1000);
        assert!(budget.reserve(&request, Some(price)).is_err());
        assert!(budget.exhausted() && cancel.is_cancelled());
        // No price: nothing to count.
        assert_eq!(budget.reserve(&request, None), Ok(0.0));
    }
}
