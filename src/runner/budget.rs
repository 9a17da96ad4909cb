//! Fitting each attempt into the model's context window.
//!
//! A re-ask carries the conversation so far, and on a server with a small window it must
//! still leave room for a whole corrected reply. Once the window is known (`--context-window`,
//! or learned from a server that refused a request as too long), each attempt is planned: the
//! whole conversation if it fits; else only the last reply and its re-ask (the earlier ones are
//! superseded); else an excerpt of that reply around its violations; else the re-ask alone.
//! `max_tokens` is lowered to the room left. A re-ask that cannot fit even so is not sent, so
//! a contract failure never turns into a transport one.

use crate::model::Message;

/// One earlier attempt that broke the contract: its reply, and the re-ask that answered it.
pub(crate) struct Turn {
    /// The reply as the model sent it.
    pub(crate) reply: String,
    /// The follow-up listing its violations.
    pub(crate) reask: String,
    /// Reply lines its violations point at, for an excerpt.
    pub(crate) lines: Vec<usize>,
    /// Tokens the reply took: the server's count, or an estimate.
    pub(crate) reply_tokens: u64,
}

/// How many tokens text is, as far as the budget goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tokenizer {
    tokens_per_byte: f64,
}

impl Tokenizer {
    /// Before a server has counted anything: three bytes a token, on the safe side of the
    /// usual four, since an estimate too low is a refused request.
    pub(crate) fn guess() -> Tokenizer {
        Tokenizer {
            tokens_per_byte: 1.0 / 3.0,
        }
    }

    /// From a server's count of a prompt of `bytes` it was sent.
    pub(crate) fn calibrated(prompt_tokens: u64, bytes: usize) -> Tokenizer {
        if prompt_tokens == 0 || bytes == 0 {
            return Tokenizer::guess();
        }
        Tokenizer {
            // A few percent over, for the chat template's own tokens around each message.
            tokens_per_byte: prompt_tokens as f64 / bytes as f64 * 1.05,
        }
    }

    /// Tokens of `messages`, with the template's few tokens per message.
    pub(crate) fn count(&self, messages: &[Message]) -> u64 {
        messages
            .iter()
            .map(|message| self.bytes(message.content.len()) + 8)
            .sum()
    }

    fn bytes(&self, bytes: usize) -> u64 {
        (bytes as f64 * self.tokens_per_byte).ceil() as u64
    }

    /// Bytes of text that `tokens` hold.
    fn bytes_in(&self, tokens: u64) -> usize {
        (tokens as f64 / self.tokens_per_byte) as usize
    }
}

/// An attempt planned to fit.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The conversation to send.
    pub(crate) messages: Vec<Message>,
    /// The reply limit to send.
    pub(crate) max_tokens: Option<u32>,
    /// What was left out or lowered, for `run.json`; none when the request is the usual one.
    pub(crate) fitted: Option<String>,
}

/// A re-ask that fits no way: the room the smallest request leaves, and the room it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfit {
    /// Tokens left for the reply by the smallest request.
    pub(crate) room: u64,
    /// Tokens a whole corrected reply needs, about.
    pub(crate) need: u64,
}

/// The least reply room worth asking for.
const MIN_REPLY: u64 = 256;

/// Plan the next attempt after `turns`, within `window` tokens.
pub(crate) fn plan(
    prompt: &[Message],
    turns: &[Turn],
    max_tokens: Option<u32>,
    window: u64,
    tokenizer: Tokenizer,
) -> Result<Plan, Unfit> {
    let cap = max_tokens.map_or(u64::MAX, u64::from);
    // A corrected reply is about as long as the one it corrects.
    let need = match turns.last() {
        None => 1,
        Some(last) => (last.reply_tokens.saturating_mul(11) / 10)
            .max(MIN_REPLY)
            .min(cap),
    };
    let with = |tail: Vec<Message>| {
        let mut messages = prompt.to_vec();
        messages.extend(tail);
        messages
    };
    let mut candidates: Vec<(Vec<Message>, Option<&str>)> = Vec::new();
    candidates.push((
        with(
            turns
                .iter()
                .flat_map(|turn| {
                    [
                        Message::assistant(turn.reply.clone()),
                        Message::user(turn.reask.clone()),
                    ]
                })
                .collect(),
        ),
        None,
    ));
    if let Some(last) = turns.last() {
        if turns.len() > 1 {
            candidates.push((
                with(vec![
                    Message::assistant(last.reply.clone()),
                    Message::user(last.reask.clone()),
                ]),
                Some("only the last reply re-sent"),
            ));
        }
        let without_reply = tokenizer.count(&with(vec![
            Message::assistant(String::new()),
            Message::user(last.reask.clone()),
        ]));
        let spare = window.saturating_sub(without_reply + need);
        // An excerpt shorter than this says too little to be worth its place.
        if spare > 100 {
            candidates.push((
                with(vec![
                    Message::assistant(excerpt(
                        &last.reply,
                        &last.lines,
                        tokenizer.bytes_in(spare),
                    )),
                    Message::user(last.reask.clone()),
                ]),
                Some("an excerpt of the last reply re-sent"),
            ));
        }
        candidates.push((
            with(vec![Message::user(format!(
                "(Your previous reply is not repeated here: with a corrected reply it would not fit the context window.)\n\n{}",
                last.reask
            ))]),
            Some("the last reply left out"),
        ));
    }
    let mut smallest_room = 0;
    for (messages, left_out) in candidates {
        let room = window.saturating_sub(tokenizer.count(&messages));
        smallest_room = room;
        if room < need {
            continue;
        }
        let lowered = max_tokens.filter(|max| u64::from(*max) > room);
        let fitted = match (left_out, lowered) {
            (None, None) => None,
            (Some(left_out), None) => Some(left_out.to_owned()),
            (None, Some(_)) => Some(format!("max_tokens lowered to {room}")),
            (Some(left_out), Some(_)) => Some(format!("{left_out}; max_tokens lowered to {room}")),
        };
        return Ok(Plan {
            messages,
            max_tokens: match lowered {
                Some(_) => Some(u32::try_from(room).unwrap_or(u32::MAX)),
                None => max_tokens,
            },
            fitted,
        });
    }
    Err(Unfit {
        room: smallest_room,
        need,
    })
}

/// At most `budget` bytes of `reply`: the lines around each violation's line, then the start
/// and the end, with what is left out marked.
fn excerpt(reply: &str, lines: &[usize], budget: usize) -> String {
    let all: Vec<&str> = reply.lines().collect();
    let mut keep = vec![false; all.len()];
    let mut mark = |from: usize, to: usize| {
        for flag in keep.iter_mut().take(to.min(all.len())).skip(from) {
            *flag = true;
        }
    };
    for &line in lines {
        mark(line.saturating_sub(4), line + 3);
    }
    mark(0, 5);
    mark(all.len().saturating_sub(3), all.len());
    let mut text = String::new();
    let mut skipped = 0;
    for (line, kept) in all.iter().zip(&keep) {
        if *kept {
            if skipped > 0 {
                text.push_str(&format!("[… {skipped} line(s) left out …]\n"));
                skipped = 0;
            }
            text.push_str(line);
            text.push('\n');
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        text.push_str(&format!("[… {skipped} line(s) left out …]\n"));
    }
    if text.len() <= budget {
        return text;
    }
    // Still too long (a reply on a few huge lines): its start and its end.
    let half = budget.saturating_sub(40) / 2;
    let head = floor_char_boundary(&text, half);
    let tail = ceil_char_boundary(&text, text.len() - half);
    format!(
        "{}\n[… {} bytes left out …]\n{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(reply_bytes: usize) -> Turn {
        Turn {
            reply: "x".repeat(reply_bytes / 2 - 1) + "\n" + &"y".repeat(reply_bytes / 2),
            reask: "Your reply does not meet the required output format.".into(),
            lines: vec![1],
            reply_tokens: (reply_bytes / 4) as u64,
        }
    }

    /// Four bytes a token, as the fake servers count.
    fn four() -> Tokenizer {
        Tokenizer::calibrated(1000, 4000)
    }

    #[test]
    fn a_conversation_that_fits_is_sent_as_it_is() {
        let prompt = [Message::user("p".repeat(4000))];
        let plan = plan(&prompt, &[turn(4000)], Some(2000), 100_000, four()).expect("fits");
        assert_eq!(plan.messages.len(), 3);
        assert_eq!(plan.max_tokens, Some(2000));
        assert_eq!(plan.fitted, None);
    }

    #[test]
    fn max_tokens_is_lowered_before_anything_is_left_out() {
        let prompt = [Message::user("p".repeat(4000))];
        let plan = plan(&prompt, &[turn(4000)], Some(8000), 6000, four()).expect("fits");
        assert_eq!(plan.messages.len(), 3);
        let max = plan.max_tokens.expect("a limit");
        assert!((1100..6000 - 2000).contains(&max), "{max}");
        assert!(
            plan.fitted
                .expect("noted")
                .starts_with("max_tokens lowered")
        );
    }

    #[test]
    fn earlier_replies_then_the_last_one_are_left_out_to_fit() {
        let prompt = [Message::user("p".repeat(4000))];
        // Two replies of 1000 tokens each; the window holds the prompt and one of them.
        let turns = [turn(4000), turn(4000)];
        let plan = plan(&prompt, &turns, Some(8000), 3600, four()).expect("fits");
        assert_eq!(plan.messages.len(), 3, "{:?}", plan.fitted);
        assert_eq!(
            plan.fitted
                .as_deref()
                .map(|f| f.starts_with("only the last reply")),
            Some(true)
        );
        // Too small for the last reply whole: an excerpt of it.
        let plan = super::plan(&prompt, &turns, Some(8000), 2900, four()).expect("fits");
        assert!(
            plan.messages[1].content.contains("left out"),
            "{:?}",
            plan.messages[1]
        );
        assert!(plan.messages[1].content.len() < 4000);
    }

    #[test]
    fn a_re_ask_that_cannot_fit_says_how_far_off_it_is() {
        let prompt = [Message::user("p".repeat(40_000))];
        let unfit = plan(&prompt, &[turn(4000)], Some(8000), 9000, four()).expect_err("no room");
        assert_eq!(unfit.need, 1100);
        assert!(unfit.room < unfit.need);
    }

    #[test]
    fn an_excerpt_keeps_the_lines_around_a_violation() {
        let reply: String = (1..=100).map(|n| format!("line {n}\n")).collect();
        let text = excerpt(&reply, &[50], 10_000);
        assert!(text.contains("line 50\n") && text.contains("line 47\n"));
        assert!(text.contains("line 1\n") && text.contains("line 100\n"));
        assert!(!text.contains("line 20\n"));
        assert!(text.contains("line(s) left out"));
        let short = excerpt(&"é".repeat(5000), &[], 400);
        assert!(short.len() <= 400, "{}", short.len());
    }
}
