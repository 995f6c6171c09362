//! Spreading a batch over the machine's cores. The calling thread works too, items are handed
//! out one at a time (manifests differ in size, so fixed halves leave a core idle), and results
//! come back in input order. A worker's panic is re-raised: a panic is a bug, never a silently
//! shorter batch.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores this process may use (read once: the lookup reads cgroup files).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `items.iter().map(f).collect()`, on up to [`cores`] threads, each given at least
/// `min_per_thread` items (a thread costs more than checking a few manifests).
pub fn map<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = cores()
        .min(items.len().div_ceil(min_per_thread.max(1)))
        .max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    let mut all = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_covers_every_item() {
        let items: Vec<usize> = (0..1000).collect();
        assert_eq!(
            super::map(&items, 1, |i| i * 2),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        assert_eq!(super::map(&items[..3], 64, |i| *i), vec![0, 1, 2]);
        assert!(super::map(&[] as &[u8], 1, |_| 0).is_empty());
    }

    #[test]
    fn a_worker_panic_is_raised() {
        let items: Vec<usize> = (0..100).collect();
        let r = std::panic::catch_unwind(|| super::map(&items, 1, |i| assert!(*i != 57)));
        assert!(r.is_err());
    }
}
