//! Bounded status lists: etcd objects must stay far below 1.5 MiB, so every list a controller
//! appends to keeps only the newest entries and counts what it dropped.

/// Append `items` to `list`, then drop the oldest entries until at most `max` remain, adding
/// the number dropped to `truncated`. The list is kept in insertion order (oldest first).
pub fn append_bounded<T>(
    list: &mut Vec<T>,
    truncated: &mut u64,
    items: impl IntoIterator<Item = T>,
    max: usize,
) {
    list.extend(items);
    truncate_oldest(list, truncated, max);
}

/// Drop the oldest (front) entries of `list` until at most `max` remain, counting them in
/// `truncated`.
pub fn truncate_oldest<T>(list: &mut Vec<T>, truncated: &mut u64, max: usize) {
    if list.len() > max {
        let excess = list.len() - max;
        list.drain(..excess);
        *truncated = truncated.saturating_add(excess as u64);
    }
}

/// Keep the first `max` entries of a list that is rebuilt from scratch (e.g. open findings),
/// returning how many were cut.
pub fn keep_first<T>(list: &mut Vec<T>, max: usize) -> u64 {
    let cut = list.len().saturating_sub(max);
    list.truncate(max);
    cut as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn newest_entries_are_kept() {
        let mut list = vec![1, 2, 3];
        let mut truncated = 5;
        append_bounded(&mut list, &mut truncated, [4, 5], 3);
        assert_eq!(list, [3, 4, 5]);
        assert_eq!(truncated, 7);
    }

    proptest! {
        #[test]
        fn never_exceeds_the_bound_and_loses_no_count(
            start in proptest::collection::vec(0u32..100, 0..50),
            added in proptest::collection::vec(0u32..100, 0..50),
            max in 0usize..40,
        ) {
            let mut list = start.clone();
            let mut truncated = 0;
            append_bounded(&mut list, &mut truncated, added.clone(), max);
            prop_assert!(list.len() <= max);
            prop_assert_eq!(list.len() as u64 + truncated, (start.len() + added.len()) as u64);
            let all: Vec<u32> = start.into_iter().chain(added).collect();
            prop_assert_eq!(&all[all.len() - list.len()..], &list[..]);
        }
    }
}
