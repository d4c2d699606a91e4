//! DFL's index sampling (§6.2): shuffled bags, uniform-yaw bins, the colour-transfer partner
//! bag, and the planner that turns them into a deterministic sequence of batch plans.
//!
//! The planner is the only place randomness enters the choice of samples: batch `n` always
//! gets the same faces and per-sample seeds for a given planner seed, whichever worker thread
//! builds it and in whatever order the workers finish.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;

/// A shuffled bag of `0..n`: draws without replacement, refilled and reshuffled when empty
/// (DFL's epoch-like sampling).
#[derive(Debug, Clone)]
pub struct ShuffledBag {
    n: usize,
    left: Vec<usize>,
}

impl ShuffledBag {
    /// A bag over `0..n` (`n` must be at least 1 to draw).
    pub fn new(n: usize) -> Self {
        ShuffledBag {
            n,
            left: Vec::new(),
        }
    }

    /// The next index; `None` only for an empty bag (`n == 0`).
    pub fn draw(&mut self, rng: &mut StdRng) -> Option<usize> {
        if self.left.is_empty() {
            self.left = (0..self.n).collect();
            self.left.shuffle(rng);
        }
        self.left.pop()
    }
}

/// Number of yaw bins of DFL's uniform-yaw sampling.
pub const YAW_BINS: usize = 128;

/// DFL's uniform-yaw bins: 128 edges over `linspace(-1.2, 1.2, 128)`; bin `g` holds the
/// samples with `e_g <= v < e_{g+1}`, bin 0 also everything below `e_1`, the last bin
/// everything `>= 1.2`; empty bins are dropped. `neg_yaws` are DFL's `-yaw` per sample.
/// Returns the member indices of each non-empty bin, in bin order.
pub fn yaw_bins(neg_yaws: &[f32]) -> Vec<Vec<usize>> {
    let edge = |g: usize| -1.2 + 2.4 * g as f64 / (YAW_BINS - 1) as f64;
    let mut bins = vec![Vec::new(); YAW_BINS];
    for (i, &y) in neg_yaws.iter().enumerate() {
        let y = f64::from(y);
        // The first bin whose upper edge lies above y (DFL's conditions in order).
        let g = (0..YAW_BINS)
            .find(|&g| {
                let next = if g < YAW_BINS - 1 {
                    edge(g + 1)
                } else {
                    edge(g)
                };
                (g == 0 && y < next)
                    || (g < YAW_BINS - 1 && y >= edge(g) && y < next)
                    || (g == YAW_BINS - 1 && y >= edge(g))
            })
            // NaN matches no condition; DFL would drop such a sample, we put it in the middle.
            .unwrap_or(YAW_BINS / 2);
        bins[g].push(i);
    }
    bins.into_iter().filter(|b| !b.is_empty()).collect()
}

/// How one side picks its samples.
#[derive(Debug, Clone)]
pub enum IndexSampler {
    /// Every sample once per epoch, in random order.
    Shuffled(ShuffledBag),
    /// Uniform over yaw: a shuffled bag of bins, then a shuffled bag inside the bin.
    UniformYaw {
        /// Member indices per non-empty bin.
        bins: Vec<Vec<usize>>,
        /// Which bin next.
        bin_bag: ShuffledBag,
        /// Which member next, per bin.
        member_bags: Vec<ShuffledBag>,
    },
}

impl IndexSampler {
    /// Plain shuffled sampling over `n` samples.
    pub fn shuffled(n: usize) -> Self {
        IndexSampler::Shuffled(ShuffledBag::new(n))
    }

    /// Uniform-yaw sampling over samples with DFL's `-yaw` values `neg_yaws`.
    pub fn uniform_yaw(neg_yaws: &[f32]) -> Self {
        let bins = yaw_bins(neg_yaws);
        IndexSampler::UniformYaw {
            bin_bag: ShuffledBag::new(bins.len()),
            member_bags: bins.iter().map(|b| ShuffledBag::new(b.len())).collect(),
            bins,
        }
    }

    /// The next sample index (`None` only when there are no samples).
    pub fn draw(&mut self, rng: &mut StdRng) -> Option<usize> {
        match self {
            IndexSampler::Shuffled(bag) => bag.draw(rng),
            IndexSampler::UniformYaw {
                bins,
                bin_bag,
                member_bags,
            } => {
                let b = bin_bag.draw(rng)?;
                let m = member_bags.get_mut(b)?.draw(rng)?;
                bins.get(b)?.get(m).copied()
            }
        }
    }
}

/// One sample of a batch: which face, the seed every output of it shares (§6.3), and the
/// colour-transfer partner (an index into the dst faceset) when `ct_mode` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleDraw {
    /// Index into the side's faceset.
    pub index: usize,
    /// Per-sample seed.
    pub seed: u64,
    /// Colour-transfer partner in the dst faceset.
    pub ct_partner: Option<usize>,
}

/// The samples of one training batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Batch number (0 for the first batch of the run).
    pub number: u64,
    /// src samples.
    pub src: Vec<SampleDraw>,
    /// dst samples.
    pub dst: Vec<SampleDraw>,
}

/// Draws batch plans in order from a seed; plans asked for out of order are kept until
/// taken, so workers may build batches in any order and still get the sequence a single
/// thread would.
#[derive(Debug)]
pub struct Planner {
    rng: StdRng,
    src: IndexSampler,
    dst: IndexSampler,
    ct: Option<ShuffledBag>,
    batch_size: usize,
    next: u64,
    pending: BTreeMap<u64, BatchPlan>,
}

impl Planner {
    /// A planner drawing `batch_size` src and dst samples per batch; `ct_partners` is the
    /// dst faceset size when src samples need a colour-transfer partner.
    pub fn new(
        seed: u64,
        src: IndexSampler,
        dst: IndexSampler,
        ct_partners: Option<usize>,
        batch_size: usize,
    ) -> Self {
        Planner {
            rng: StdRng::seed_from_u64(seed),
            src,
            dst,
            ct: ct_partners.map(ShuffledBag::new),
            batch_size,
            next: 0,
            pending: BTreeMap::new(),
        }
    }

    fn draw_next(&mut self) -> Option<BatchPlan> {
        let mut src = Vec::with_capacity(self.batch_size);
        for _ in 0..self.batch_size {
            let index = self.src.draw(&mut self.rng)?;
            let seed = self.rng.random::<u64>();
            let ct_partner = match self.ct.as_mut() {
                Some(bag) => Some(bag.draw(&mut self.rng)?),
                None => None,
            };
            src.push(SampleDraw {
                index,
                seed,
                ct_partner,
            });
        }
        let mut dst = Vec::with_capacity(self.batch_size);
        for _ in 0..self.batch_size {
            let index = self.dst.draw(&mut self.rng)?;
            let seed = self.rng.random::<u64>();
            dst.push(SampleDraw {
                index,
                seed,
                ct_partner: None,
            });
        }
        let plan = BatchPlan {
            number: self.next,
            src,
            dst,
        };
        self.next += 1;
        Some(plan)
    }

    /// The plan of batch `n` (`None` when a side has no samples, or when batch `n` was
    /// already taken).
    pub fn plan(&mut self, n: u64) -> Option<BatchPlan> {
        while self.next <= n {
            let p = self.draw_next()?;
            self.pending.insert(p.number, p);
        }
        self.pending.remove(&n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bag_draws_each_index_once_per_epoch() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut bag = ShuffledBag::new(7);
        for _ in 0..3 {
            let mut seen: Vec<usize> = (0..7).map(|_| bag.draw(&mut rng).unwrap()).collect();
            seen.sort();
            assert_eq!(seen, (0..7).collect::<Vec<_>>());
        }
        assert_eq!(ShuffledBag::new(0).draw(&mut rng), None);
    }

    #[test]
    fn yaw_bins_follow_dfl_edges() {
        // Edges are -1.2 + k * 2.4/127; 0.0 lies in bin 63 ([-0.00945, 0.00945)).
        let bins = yaw_bins(&[-5.0, -1.2, -1.19, 0.0, 0.001, 1.19, 1.2, 3.0]);
        // -5, -1.2 and -1.19 share bin 0 (everything below e_1 = -1.181).
        assert_eq!(bins[0], vec![0, 1, 2]);
        assert_eq!(bins[1], vec![3, 4]);
        // 1.19 is in bin 126 ([1.181, 1.2)); 1.2 and 3.0 in the last bin.
        assert_eq!(bins[2], vec![5]);
        assert_eq!(bins[3], vec![6, 7]);
        assert_eq!(bins.len(), 4);
    }

    #[test]
    fn plans_do_not_depend_on_request_order() {
        let make = || {
            Planner::new(
                9,
                IndexSampler::shuffled(5),
                IndexSampler::shuffled(3),
                Some(3),
                2,
            )
        };
        let mut a = make();
        let in_order: Vec<BatchPlan> = (0..6).map(|n| a.plan(n).unwrap()).collect();
        let mut b = make();
        let mut shuffled: Vec<BatchPlan> = [3, 0, 5, 1, 4, 2]
            .iter()
            .map(|&n| b.plan(n).unwrap())
            .collect();
        shuffled.sort_by_key(|p| p.number);
        assert_eq!(in_order, shuffled);
        assert!(b.plan(2).is_none(), "a plan is handed out once");
        assert!(
            in_order
                .iter()
                .all(|p| p.src.iter().all(|d| d.ct_partner.is_some()))
        );
    }
}
