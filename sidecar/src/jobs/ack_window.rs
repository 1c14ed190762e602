//! Batched acknowledgements for one consumer channel (AMQP's `basic.ack` with
//! `multiple`). Pure: the driver feeds it deliveries and verdicts and sends what
//! [`AckWindow::take`] returns.
//!
//! One `basic.ack(tag, multiple=true)` settles every unsettled delivery up to `tag` on its
//! channel, so it may only be sent when every delivery up to `tag` was acked by its worker
//! (or already settled some other way). The window keeps the deliveries not yet answered
//! (`outstanding`) and the acks not yet sent (`pending`): the pending acks below the oldest
//! outstanding delivery go out as one frame; the ones above it wait for it, at most
//! `max_age` flushes, then go out one by one (a slow job must not hold the others'
//! prefetch slots). A nack is sent at once by the caller, and the delivery leaves `outstanding`
//! only after its frame is queued, so no multiple ack ever covers it.

use std::collections::{BTreeMap, BTreeSet};

/// What to send on the channel, in this order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flush {
    /// `basic.ack(tag, multiple=true)`.
    pub up_to: Option<u64>,
    /// `basic.ack(tag, multiple=false)` each.
    pub singles: Vec<u64>,
}

impl Flush {
    pub fn is_empty(&self) -> bool {
        self.up_to.is_none() && self.singles.is_empty()
    }
}

/// Deliveries and acks of one channel.
#[derive(Debug, Default)]
pub struct AckWindow {
    outstanding: BTreeSet<u64>,
    /// Tag → the flush count when it was acked.
    pending: BTreeMap<u64, u32>,
    /// Flushes so far.
    tick: u32,
}

impl AckWindow {
    pub fn new() -> AckWindow {
        AckWindow::default()
    }

    /// A delivery was handed out.
    pub fn deliver(&mut self, tag: u64) {
        self.outstanding.insert(tag);
    }

    /// Its worker acked it: the ack waits for the next [`take`](Self::take).
    pub fn ack(&mut self, tag: u64) {
        self.outstanding.remove(&tag);
        self.pending.insert(tag, self.tick);
    }

    /// Settled some other way (a nack whose frame is already queued).
    pub fn settled(&mut self, tag: u64) {
        self.outstanding.remove(&tag);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Deliveries handed out and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The acks to send now: every pending ack below the oldest outstanding delivery as
    /// one multiple ack, and the others that waited `max_age` flushes or more one by one
    /// (`max_age` 0: all of them, as before the channel closes).
    pub fn take(&mut self, max_age: u32) -> Flush {
        let tick = self.tick;
        self.tick = self.tick.wrapping_add(1);
        let rest = match self.outstanding.first() {
            Some(&oldest) => self.pending.split_off(&oldest),
            None => BTreeMap::new(),
        };
        let up_to = self.pending.last_key_value().map(|(&t, _)| t);
        self.pending = rest;
        let mut singles = Vec::new();
        self.pending.retain(|&tag, &mut since| {
            let old = tick.wrapping_sub(since) >= max_age;
            if old {
                singles.push(tag);
            }
            !old
        });
        Flush { up_to, singles }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_acks_go_out_as_one_multiple_ack() {
        let mut w = AckWindow::new();
        for t in 1..=5 {
            w.deliver(t);
        }
        w.ack(1);
        w.ack(2);
        w.ack(3);
        assert_eq!(
            w.take(3),
            Flush {
                up_to: Some(3),
                singles: vec![]
            }
        );
        assert!(w.take(0).is_empty());
    }

    #[test]
    fn an_unanswered_delivery_is_never_covered() {
        let mut w = AckWindow::new();
        for t in 1..=4 {
            w.deliver(t);
        }
        w.ack(1);
        w.ack(3);
        w.ack(4);
        // 2 is still running: only 1 may go out as a multiple ack.
        assert_eq!(
            w.take(2),
            Flush {
                up_to: Some(1),
                singles: vec![]
            }
        );
        assert_eq!(w.pending(), 2);
        assert!(w.take(2).is_empty());
        w.deliver(5);
        w.ack(5);
        // Two flushes later 3 and 4 go out alone, never a multiple ack past 2; 5 is younger.
        assert_eq!(
            w.take(2),
            Flush {
                up_to: None,
                singles: vec![3, 4]
            }
        );
        w.ack(2);
        assert_eq!(
            w.take(2),
            Flush {
                up_to: Some(5),
                singles: vec![]
            }
        );
    }

    #[test]
    fn a_nacked_delivery_stops_blocking_once_settled() {
        let mut w = AckWindow::new();
        for t in 1..=3 {
            w.deliver(t);
        }
        w.ack(1);
        w.ack(3);
        assert_eq!(w.take(9).up_to, Some(1));
        // 2 is nacked: until its frame is queued it still blocks.
        assert!(w.take(9).is_empty());
        w.settled(2);
        assert_eq!(w.take(9).up_to, Some(3));
    }

    #[test]
    fn before_the_channel_closes_every_ack_goes_out() {
        let mut w = AckWindow::new();
        for t in 1..=3 {
            w.deliver(t);
        }
        w.ack(2);
        w.ack(3);
        assert_eq!(
            w.take(0),
            Flush {
                up_to: None,
                singles: vec![2, 3]
            }
        );
    }
}
