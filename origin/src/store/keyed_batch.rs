//! Exactly-once increments for clients that send an `Idempotency-Key`: which entries of a batch
//! count, and which value each gets. Shared by both stores so they cannot disagree.

use std::collections::HashMap;

/// How one entry of a batch is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Counted: the `n`-th new increment of the batch (0-based).
    New(usize),
    /// Its key was committed before: that first answer again.
    Stored(i64),
}

/// The decision for a batch, made while the counter row is locked.
#[derive(Debug)]
pub struct KeyedBatch {
    answers: Vec<Answer>,
    new_count: usize,
    /// Keys to store with the value of `Answer::New(i)`, in order of first appearance.
    new_keys: Vec<(String, usize)>,
}

impl KeyedBatch {
    /// `entries` in arrival order (`None` = no key); `stored` = keys already committed.
    /// A key repeated within the batch counts once; its repeats get the same value.
    pub fn plan(entries: &[Option<String>], stored: &HashMap<String, i64>) -> Self {
        let mut answers = Vec::with_capacity(entries.len());
        let mut first_in_batch: HashMap<&str, usize> = HashMap::new();
        let mut new_keys = Vec::new();
        let mut new_count = 0;
        for entry in entries {
            let answer = match entry {
                None => {
                    new_count += 1;
                    Answer::New(new_count - 1)
                }
                Some(key) => match stored.get(key) {
                    Some(&value) => Answer::Stored(value),
                    None => match first_in_batch.get(key.as_str()) {
                        Some(&index) => Answer::New(index),
                        None => {
                            new_count += 1;
                            first_in_batch.insert(key, new_count - 1);
                            new_keys.push((key.clone(), new_count - 1));
                            Answer::New(new_count - 1)
                        }
                    },
                },
            };
            answers.push(answer);
        }
        Self {
            answers,
            new_count,
            new_keys,
        }
    }

    /// How much the counter grows.
    pub fn new_count(&self) -> i64 {
        self.new_count as i64
    }

    /// Each entry's value, given the counter's value after adding `new_count()`.
    pub fn values(&self, after: i64) -> Vec<i64> {
        let first = after - self.new_count as i64 + 1;
        self.answers
            .iter()
            .map(|answer| match *answer {
                Answer::New(index) => first + index as i64,
                Answer::Stored(value) => value,
            })
            .collect()
    }

    /// `(key, value)` pairs to store in the same transaction as the increment.
    pub fn keys_to_store(&self, after: i64) -> Vec<(String, i64)> {
        let first = after - self.new_count as i64 + 1;
        self.new_keys
            .iter()
            .map(|(key, index)| (key.clone(), first + *index as i64))
            .collect()
    }

    /// The distinct keys of a batch, to look up.
    pub fn distinct_keys(entries: &[Option<String>]) -> Vec<String> {
        let mut keys: Vec<String> = entries.iter().flatten().cloned().collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Option<String> {
        Some(k.to_string())
    }

    #[test]
    fn new_keys_and_keyless_entries_count_in_arrival_order() {
        let entries = [None, key("a"), None];
        let batch = KeyedBatch::plan(&entries, &HashMap::new());
        assert_eq!(batch.new_count(), 3);
        assert_eq!(batch.values(13), vec![11, 12, 13]);
        assert_eq!(batch.keys_to_store(13), vec![("a".to_string(), 12)]);
    }

    #[test]
    fn a_stored_key_gets_its_first_answer_and_does_not_count() {
        let stored = HashMap::from([("a".to_string(), 5)]);
        let batch = KeyedBatch::plan(&[key("a"), None], &stored);
        assert_eq!(batch.new_count(), 1);
        assert_eq!(batch.values(20), vec![5, 20]);
        assert!(batch.keys_to_store(20).is_empty());
    }

    #[test]
    fn a_key_repeated_within_a_batch_counts_once() {
        let batch = KeyedBatch::plan(&[key("a"), key("b"), key("a")], &HashMap::new());
        assert_eq!(batch.new_count(), 2);
        assert_eq!(batch.values(2), vec![1, 2, 1]);
        assert_eq!(
            batch.keys_to_store(2),
            vec![("a".to_string(), 1), ("b".to_string(), 2)]
        );
    }

    #[test]
    fn a_batch_of_only_retries_changes_nothing() {
        let stored = HashMap::from([("a".to_string(), 7)]);
        let batch = KeyedBatch::plan(&[key("a"), key("a")], &stored);
        assert_eq!(batch.new_count(), 0);
        assert_eq!(batch.values(99), vec![7, 7]);
    }
}
