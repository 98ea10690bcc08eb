//! A synthetic language with exact answers: the tiny model's training data and eval tasks.
//!
//! Every example is `prompt` → `answer`, both plain text in one closed vocabulary
//! ([`VOCAB_WORDS`], digits, symbols). The kinds are chosen so that decoding order matters:
//! carries run right to left through multi-digit sums, sorting and reversal need every input
//! token before any output token is certain, and word problems bury their numbers in text.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// One exact-answer example, as a line of a tasks `.jsonl` file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Example {
    #[serde(default)]
    pub task: String,
    pub prompt: String,
    pub answer: String,
}

pub const KINDS: [&str; 7] = ["add", "sub", "chain", "sort", "reverse", "copy", "story"];

/// The long-answer kinds: answers of 20-40 tokens whose tokens depend on each other across
/// the answer (carries through 20 digits, running totals and maxima, a sorted list, a
/// reversed or copied 32-letter string, arithmetic where each line uses the last result;
/// `lsbmax`, 19 digits, is a helper for `lsbadd`: the same operands, a monotone answer).
pub const LONG_KINDS: [&str; 10] = ["lsbadd", "lsbmax", "running", "longcopy", "runmax", "walk", "longadd", "longsort", "longreverse", "worked"];

/// The kinds of `d2c train --preset long-tasks` (`models/long-tasks`): every answer token
/// reads the tokens it depends on at a fixed offset, and each of those tokens alone already
/// tells something about it, which is what gradient descent on the 4 x 128 network picked up
/// within the time budget. Digit sums (`lsbadd`, `running`, `walk`, `longadd`) carry no such
/// signal in any single input, and reversal and sorting need the answer index (README).
pub const LONG_PRESET_KINDS: [&str; 2] = ["longcopy", "runmax"];

/// Every kind [`sample`] knows.
pub fn all_kinds() -> Vec<&'static str> {
    KINDS.iter().chain(LONG_KINDS.iter()).copied().collect()
}

/// Digits of `x` zero-padded to `width`, one token each (`0 0 4 2`).
fn digits(x: u128, width: usize) -> String {
    join(&format!("{x:0width$}").chars().collect::<Vec<_>>())
}

/// `x` zero-padded to `width` digits, least significant first, as one number (42 -> `2400`;
/// still one token per digit, as every number).
fn lsb_digits(x: u128, width: usize) -> String {
    format!("{x:0width$}").chars().rev().collect()
}

const NAMES: [&str; 8] = ["tom", "ann", "bob", "eve", "sam", "max", "liz", "joe"];
const ITEMS: [&str; 6] = ["apples", "pens", "cards", "coins", "books", "eggs"];
const GAIN: [&str; 3] = ["gets", "buys", "finds"];
const LOSS: [&str; 3] = ["sells", "eats", "loses"];
const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz";

/// Every word of the language apart from digits and symbols (the tokenizer's word list).
pub const VOCAB_WORDS: &[&str] = &[
    "sort", "reverse", "copy", "has", "he", "she", "and", "how", "many", "does", "have", "now", "sells", "gets", "buys", "finds", "eats", "loses", "tom",
    "ann", "bob", "eve", "sam", "max", "liz", "joe", "apples", "pens", "cards", "coins", "books", "eggs",
];
pub const SYMBOLS: &[&str] = &["+", "-", "=", ".", "?", ","];

fn pronoun(name: &str) -> &'static str {
    if matches!(name, "ann" | "eve" | "liz") {
        "she"
    } else {
        "he"
    }
}

fn join<T: ToString>(xs: &[T]) -> String {
    xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
}

/// A random example of `kind` (one of [`KINDS`]).
///
/// Every kind has a fixed layout (numbers zero-padded to a fixed width, fixed item counts), so
/// each answer token sits at a fixed offset from the prompt tokens it depends on: a 0.85M
/// model trained for minutes on a CPU learns fixed offsets, while variable layouts need
/// induction-style circuits that did not form within that budget (see the README).
pub fn sample(kind: &str, rng: &mut impl Rng) -> Example {
    let (prompt, answer) = match kind {
        "add" => {
            let (a, b) = (rng.gen_range(0..100u32), rng.gen_range(0..100u32));
            (format!("{a:02} + {b:02} ="), format!("{:03}", a + b))
        }
        "sub" => {
            let (a, b) = (rng.gen_range(0..100u32), rng.gen_range(0..100u32));
            let (a, b) = (a.max(b), a.min(b));
            (format!("{a:02} - {b:02} ="), format!("{:02}", a - b))
        }
        "chain" => {
            let (a, b, c) = (rng.gen_range(0..10u32), rng.gen_range(0..10u32), rng.gen_range(0..10u32));
            if rng.gen_bool(0.5) && a + b >= c {
                (format!("{a} + {b} - {c} ="), (a + b - c).to_string())
            } else {
                (format!("{a} + {b} + {c} ="), (a + b + c).to_string())
            }
        }
        "sort" => {
            let xs: Vec<u32> = (0..SORT_LEN).map(|_| rng.gen_range(0..10)).collect();
            let mut s = xs.clone();
            s.sort();
            (format!("sort {} =", join(&xs)), join(&s))
        }
        "reverse" | "copy" => {
            let xs: Vec<char> = (0..SEQ_LEN).map(|_| LETTERS.as_bytes()[rng.gen_range(0..26)] as char).collect();
            let out: Vec<char> = if kind == "reverse" { xs.iter().rev().copied().collect() } else { xs.clone() };
            (format!("{kind} {} =", join(&xs)), join(&out))
        }
        "longadd" => {
            // 19-digit operands, a 20-digit sum: every answer digit depends on the carries of
            // all lower digits.
            let (a, b) = (rng.gen_range(0..10u128.pow(19)), rng.gen_range(0..10u128.pow(19)));
            (format!("{} + {} =", digits(a, 19), digits(b, 19)), digits(a + b, 20))
        }
        "longsort" => {
            let xs: Vec<u32> = (0..LONG_SORT_LEN).map(|_| rng.gen_range(0..10)).collect();
            let mut s = xs.clone();
            s.sort();
            (format!("sort {} =", join(&xs)), join(&s))
        }
        "longreverse" | "longcopy" => {
            let xs: Vec<char> = (0..LONG_SEQ_LEN).map(|_| LETTERS.as_bytes()[rng.gen_range(0..26)] as char).collect();
            let out: Vec<char> = if kind == "longreverse" { xs.iter().rev().copied().collect() } else { xs.clone() };
            (format!("{} {} =", &kind[4..], join(&xs)), join(&out))
        }
        "lsbadd" => {
            // The same sum written least significant digit first (operands too): the carry
            // runs left to right, the order in which the answer is read.
            let (a, b) = (rng.gen_range(0..10u128.pow(19)), rng.gen_range(0..10u128.pow(19)));
            (format!("{} + {} =", lsb_digits(a, 19), lsb_digits(b, 19)), lsb_digits(a + b, 20))
        }
        "lsbmax" => {
            // lsbadd's layout with the digit-wise larger digit as the answer: each operand
            // digit alone tells something about it (see LONG_PRESET_KINDS).
            let (a, b) = (rng.gen_range(0..10u128.pow(19)), rng.gen_range(0..10u128.pow(19)));
            let (x, y) = (lsb_digits(a, 19), lsb_digits(b, 19));
            let m: String = x.chars().zip(y.chars()).map(|(p, q)| p.max(q)).collect();
            (format!("{x} max {y} ="), m)
        }
        "worked" => worked(rng),
        "running" => running(rng, 9),
        "walk" => running(rng, 3),
        "runmax" => {
            let xs: Vec<u8> = (0..RUNMAX_LEN).map(|_| LETTERS.as_bytes()[rng.gen_range(0..26)]).collect();
            let maxima: Vec<char> = xs
                .iter()
                .scan(0u8, |m, &x| {
                    *m = (*m).max(x);
                    Some(*m as char)
                })
                .collect();
            (format!("max {} =", join(&xs.iter().map(|&x| x as char).collect::<Vec<_>>())), join(&maxima))
        }
        _ => story(rng),
    };
    Example { task: kind.to_string(), prompt, answer }
}

const SORT_LEN: usize = 5;
const LONG_SORT_LEN: usize = 20;
const LONG_SEQ_LEN: usize = 32;
const WORKED_OPS: usize = 5;

/// "03 + 5 - 2 + 7 =" -> "03 + 5 = 08 . 08 - 2 = 06 . 06 + 7 = 13": each line starts from the
/// last line's result, so a wrong early result propagates to the end. Results stay in 0..=99
/// and are written with two digits, so every line has the same layout (see [`sample`]).
fn worked(rng: &mut impl Rng) -> (String, String) {
    let two = |x: i64| format!("{x:02}");
    let mut acc: i64 = rng.gen_range(1..100);
    let mut prompt = two(acc);
    let mut lines = Vec::new();
    for _ in 0..WORKED_OPS {
        let k: i64 = rng.gen_range(1..10);
        let (op, next) = if acc >= k && (rng.gen_bool(0.5) || acc + k > 99) { ("-", acc - k) } else { ("+", acc + k) };
        prompt.push_str(&format!(" {op} {k}"));
        lines.push(format!("{} {op} {k} = {}", two(acc), two(next)));
        acc = next;
    }
    (format!("{prompt} ="), lines.join(" . "))
}
const SEQ_LEN: usize = 5;
const RUNNING_OPS: usize = 12;
const RUNMAX_LEN: usize = 24;

/// "03 + 5 - 2 + 7 ... =" -> "08 06 13 ...": the running total after each step (steps of
/// 1..=`max_step`), two digits wide. Prompt steps and answer totals are both two tokens long,
/// so total j sits at a fixed offset from step j and from total j - 1; yet no total is known
/// before the one before it. `walk` (steps up to 3) is the same with small steps.
fn running(rng: &mut impl Rng, max_step: i64) -> (String, String) {
    let mut acc: i64 = rng.gen_range(1..100);
    let mut prompt = format!("{acc:02}");
    let mut totals = Vec::new();
    for _ in 0..RUNNING_OPS {
        let k: i64 = rng.gen_range(1..=max_step);
        let (op, next) = if acc >= k && (rng.gen_bool(0.5) || acc + k > 99) { ("-", acc - k) } else { ("+", acc + k) };
        prompt.push_str(&format!(" {op} {k}"));
        totals.push(format!("{next:02}"));
        acc = next;
    }
    (format!("{prompt} ="), totals.join(" "))
}

/// "tom has 5 apples . he buys 3 and eats 2 . how many apples does tom have now ?"
fn story(rng: &mut impl Rng) -> (String, String) {
    let name = *NAMES.choose(rng).unwrap_or(&"tom");
    let item = *ITEMS.choose(rng).unwrap_or(&"apples");
    let mut have: i64 = rng.gen_range(1..10);
    let mut text = format!("{name} has {have} {item} . {}", pronoun(name));
    let events = rng.gen_range(1..=2);
    for e in 0..events {
        if e > 0 {
            text.push_str(" and");
        }
        let k: i64 = rng.gen_range(1..10);
        if have >= k && rng.gen_bool(0.5) {
            have -= k;
            text.push_str(&format!(" {} {k}", LOSS.choose(rng).unwrap_or(&"eats")));
        } else {
            have += k;
            text.push_str(&format!(" {} {k}", GAIN.choose(rng).unwrap_or(&"gets")));
        }
    }
    text.push_str(&format!(" . how many {item} does {name} have now ?"));
    (text, have.to_string())
}

/// A random example of a uniformly chosen kind.
pub fn sample_any(rng: &mut impl Rng) -> Example {
    let kind = KINDS[rng.gen_range(0..KINDS.len())];
    sample(kind, rng)
}

/// `n` distinct examples, an equal share of every kind in `kinds` (all of [`KINDS`] when
/// empty), from `seed`: the held-out set. Listed round-robin over the kinds, so the first N
/// lines (`d2c eval --limit N`) are a balanced sample.
pub fn heldout(seed: u64, n: usize, kinds: &[String]) -> Vec<Example> {
    let kinds: Vec<&str> = if kinds.is_empty() { KINDS.to_vec() } else { kinds.iter().map(|s| s.as_str()).collect() };
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    let per = n.div_ceil(kinds.len());
    for kind in kinds {
        let mut got = 0;
        let mut tries = 0;
        while got < per && out.len() < n && tries < 100 * per {
            tries += 1;
            let ex = sample(kind, &mut rng);
            if seen.insert(ex.prompt.clone()) {
                out.push((got, ex));
                got += 1;
            }
        }
    }
    // Stable: kind order within each round is the order of `kinds`.
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn answers_are_right() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..500 {
            let ex = sample_any(&mut rng);
            let p: Vec<&str> = ex.prompt.split_whitespace().collect();
            match ex.task.as_str() {
                "add" => assert_eq!(p[0].parse::<u32>().unwrap() + p[2].parse::<u32>().unwrap(), ex.answer.parse::<u32>().unwrap()),
                "sort" => {
                    let mut xs: Vec<&str> = p[1..p.len() - 1].to_vec();
                    xs.sort();
                    assert_eq!(xs.join(" "), ex.answer);
                }
                "reverse" => assert_eq!(p[1..p.len() - 1].iter().rev().copied().collect::<Vec<_>>().join(" "), ex.answer),
                _ => {}
            }
        }
    }

    #[test]
    fn long_answers_are_right_and_long() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for kind in LONG_KINDS {
            for _ in 0..100 {
                let ex = sample(kind, &mut rng);
                let p: Vec<&str> = ex.prompt.split_whitespace().collect();
                let a: Vec<&str> = ex.answer.split_whitespace().collect();
                let num = |xs: &[&str]| xs.concat().parse::<u128>().unwrap();
                match kind {
                    "longadd" => assert_eq!(num(&p[0..19]) + num(&p[20..39]), num(&a)),
                    "lsbadd" => {
                        let rev = |x: &str| x.chars().rev().collect::<String>().parse::<u128>().unwrap();
                        assert_eq!((p[0].len(), p[2].len(), a.len(), a[0].len()), (19, 19, 1, 20));
                        assert_eq!(rev(p[0]) + rev(p[2]), rev(a[0]));
                    }
                    "lsbmax" => {
                        let m: String = p[0].chars().zip(p[2].chars()).map(|(x, y)| x.max(y)).collect();
                        assert_eq!((p[1], a[0]), ("max", m.as_str()));
                    }
                    "runmax" => {
                        let mut m = "";
                        for (x, y) in p[1..p.len() - 1].iter().zip(&a) {
                            m = m.max(*x);
                            assert_eq!(m, *y);
                        }
                        assert_eq!(a.len(), 24);
                    }
                    "running" | "walk" => {
                        // Words, not tokens: each total is one two-digit word (two tokens).
                        let mut acc: i64 = p[0].parse().unwrap();
                        for (i, total) in a.iter().enumerate() {
                            let k: i64 = p[2 + 2 * i].parse().unwrap();
                            acc = if p[1 + 2 * i] == "+" { acc + k } else { acc - k };
                            assert_eq!(format!("{acc:02}"), *total);
                        }
                        assert_eq!(a.len(), 12);
                    }
                    "longsort" => {
                        let mut xs = p[1..p.len() - 1].to_vec();
                        xs.sort();
                        assert_eq!(xs, a);
                    }
                    "longreverse" => assert_eq!(p[1..p.len() - 1].iter().rev().copied().collect::<Vec<_>>(), a),
                    "longcopy" => assert_eq!(&p[1..p.len() - 1], &a[..]),
                    _ => {
                        // Every line is right and starts from the previous result.
                        let mut last: Option<i64> = None;
                        for line in ex.answer.split(" . ") {
                            let t: Vec<&str> = line.split_whitespace().collect();
                            let (x, k, r): (i64, i64, i64) = (t[0].parse().unwrap(), t[2].parse().unwrap(), t[4].parse().unwrap());
                            assert_eq!(if t[1] == "+" { x + k } else { x - k }, r, "{line}");
                            assert!(last.is_none_or(|l| l == x) && (0..=99).contains(&r));
                            last = Some(r);
                        }
                    }
                }
                // Tokens, not words: every digit is a token.
                let tokens: usize = a.iter().map(|w| if w.chars().all(|c| c.is_ascii_digit()) { w.len() } else { 1 }).sum();
                // lsbmax is a helper kind for lsbadd (19 digits, one per operand digit).
                assert!(tokens >= 20 || kind == "lsbmax", "{kind}: {tokens} tokens");
            }
        }
    }

    #[test]
    fn heldout_is_deterministic_and_distinct() {
        let a = heldout(7, 70, &[]);
        assert_eq!(a, heldout(7, 70, &[]));
        assert_eq!(a.len(), 70);
        let set: std::collections::HashSet<_> = a.iter().map(|e| &e.prompt).collect();
        assert_eq!(set.len(), 70);
        assert!(KINDS.iter().all(|k| a.iter().filter(|e| e.task == *k).count() == 10));
    }
}
