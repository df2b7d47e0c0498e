//! Per-session bookkeeping of the sequence numbers stamped into every video frame: lost,
//! duplicated and reordered frames, whatever the delivery path.

#[derive(Debug, Default, Clone)]
pub struct SequenceTracker {
    /// (stream tag, highest sequence seen). A new tag means a new publisher session.
    last: Option<(u32, u64)>,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
}

impl SequenceTracker {
    pub fn observe(&mut self, tag: u32, sequence: u64) {
        match self.last {
            Some((t, last)) if t == tag => {
                if sequence == last + 1 {
                    self.last = Some((tag, sequence));
                } else if sequence > last + 1 {
                    self.lost += sequence - last - 1;
                    self.last = Some((tag, sequence));
                } else if sequence == last {
                    self.duplicates += 1;
                } else {
                    // Arrived after a later frame. It was counted as lost when the gap appeared;
                    // it was not lost after all.
                    self.reordered += 1;
                    self.lost = self.lost.saturating_sub(1);
                }
            }
            // First frame, or the publisher reconnected with a new tag: nothing to compare with.
            _ => self.last = Some((tag, sequence)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_duplicates_and_reorders() {
        let mut s = SequenceTracker::default();
        for seq in [10, 11, 14, 14, 12, 15] {
            s.observe(1, seq);
        }
        // 12 and 13 went missing at 14; 12 came late (reordered), so only 13 is lost.
        assert_eq!((s.lost, s.duplicates, s.reordered), (1, 1, 1));
    }

    #[test]
    fn a_new_publisher_session_restarts_counting() {
        let mut s = SequenceTracker::default();
        s.observe(1, 500);
        s.observe(2, 0);
        s.observe(2, 1);
        assert_eq!((s.lost, s.duplicates, s.reordered), (0, 0, 0));
    }
}
