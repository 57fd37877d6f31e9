//! The order in which a connector tries the addresses of one service (a cluster's nodes,
//! or a domain's SRV targets).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Which address a connector tries first. The address of the last session that logged in
/// comes first again, since XEP-0198 resumption only works on the node that held the
/// session; after an attempt that never logged in (the node refused the stream, is shutting
/// down, or did not answer before the attempt timed out), the address after the last one
/// tried does. The others follow in order, wrapping around.
#[derive(Debug, Default)]
pub struct Failover {
    /// The index tried first.
    first: AtomicUsize,
    /// The index of the address tried last.
    used: AtomicUsize,
}

impl Failover {
    /// Indices into a list of `len` addresses, in the order to try them.
    pub fn order(&self, len: usize) -> impl Iterator<Item = usize> + use<> {
        let first = if len == 0 {
            0
        } else {
            self.first.load(Ordering::Relaxed) % len
        };
        (0..len).map(move |i| (first + i) % len)
    }

    /// Address `index` is being tried.
    pub fn trying(&self, index: usize) {
        self.used.store(index, Ordering::Relaxed);
    }

    /// The last attempt ended: its session had logged in (`logged_in`), or the link failed
    /// before (or could not be opened, or the attempt timed out).
    pub fn session_ended(&self, logged_in: bool) {
        let used = self.used.load(Ordering::Relaxed);
        let first = if logged_in {
            used
        } else {
            used.wrapping_add(1)
        };
        self.first.store(first, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Failover;

    #[test]
    fn the_address_that_logged_in_comes_first_and_a_failed_one_goes_last() {
        let f = Failover::default();
        assert_eq!(f.order(3).collect::<Vec<_>>(), [0, 1, 2]);
        // Node 0 refused: node 1 took the link and logged in.
        f.trying(0);
        f.trying(1);
        f.session_ended(true);
        assert_eq!(f.order(3).collect::<Vec<_>>(), [1, 2, 0]);
        // Node 1 opened a link but the stream failed before the login (or hung until the
        // attempt timed out).
        f.session_ended(false);
        assert_eq!(f.order(3).collect::<Vec<_>>(), [2, 0, 1]);
        // Past the end it wraps around; an empty list has no order.
        f.trying(2);
        f.session_ended(false);
        assert_eq!(f.order(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(f.order(0).count(), 0);
    }
}
