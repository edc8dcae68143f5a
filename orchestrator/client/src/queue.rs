//! A work queue of keys: each key at most once in the queue, handed out in
//! arrival order; requeue after a delay for retries with backoff.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use faultline_env::Env;
use tokio::sync::Notify;

struct State<K> {
    order: VecDeque<K>,
    queued: BTreeSet<K>,
    /// Consecutive failures per key, for backoff.
    failures: BTreeMap<K, u32>,
}

/// A deduplicating queue of keys.
pub struct WorkQueue<K> {
    env: Env,
    state: Rc<RefCell<State<K>>>,
    notify: Rc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            env: self.env.clone(),
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<K: Ord + Clone + 'static> WorkQueue<K> {
    pub fn new(env: Env) -> WorkQueue<K> {
        WorkQueue {
            env,
            state: Rc::new(RefCell::new(State {
                order: VecDeque::new(),
                queued: BTreeSet::new(),
                failures: BTreeMap::new(),
            })),
            notify: Rc::new(Notify::new()),
        }
    }

    /// Queues `key` unless it is already queued.
    pub fn add(&self, key: K) {
        let mut s = self.state.borrow_mut();
        if s.queued.insert(key.clone()) {
            s.order.push_back(key);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        let q = self.clone();
        let env = self.env.clone();
        self.env.spawn(async move {
            env.sleep(delay).await;
            q.add(key);
        });
    }

    /// Requeues `key` after an exponential backoff (5 ms doubling to 30 s,
    /// as client-go's default rate limiter), counting the failure.
    pub fn retry(&self, key: K) {
        let n = {
            let mut s = self.state.borrow_mut();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = Duration::from_millis((5u64 << n.min(13)).min(30_000));
        self.add_after(key, delay);
    }

    /// Forgets `key`'s failures (it succeeded).
    pub fn forget(&self, key: &K) {
        self.state.borrow_mut().failures.remove(key);
    }

    /// The next key, waiting for one.
    pub async fn next(&self) -> K {
        loop {
            {
                let mut s = self.state.borrow_mut();
                if let Some(k) = s.order.pop_front() {
                    s.queued.remove(&k);
                    return k;
                }
            }
            self.notify.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.state.borrow().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
