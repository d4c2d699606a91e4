//! `--shard i/n`: split a list of work items across `n` independent processes or machines.

use std::fmt;
use std::str::FromStr;

/// One share of a job: this process handles items whose position `p` satisfies
/// `p % count == index` (interleaved, so every shard sees the whole time range of a video and
/// shards finish at about the same time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Zero-based index of this shard, `< count`.
    pub index: u32,
    /// Number of shards, `>= 1`.
    pub count: u32,
}

/// Why a `--shard` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    /// The text is not of the form `i/n`.
    #[error("shard '{0}' is not of the form i/n (for example 0/4)")]
    Syntax(String),
    /// `n` is zero or `i >= n`.
    #[error("shard '{0}' is out of range: need n >= 1 and 0 <= i < n")]
    Range(String),
}

impl Shard {
    /// The whole job in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the item at position `pos` of the full, sorted work list belongs to this shard.
    pub fn owns(&self, pos: usize) -> bool {
        pos % self.count as usize == self.index as usize
    }

    /// Keeps only this shard's items of a full, sorted work list.
    pub fn select<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(p, _)| self.owns(*p))
            .map(|(_, t)| t)
            .collect()
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(s.into()))?;
        let index: u32 = i.trim().parse().map_err(|_| ShardError::Syntax(s.into()))?;
        let count: u32 = n.trim().parse().map_err(|_| ShardError::Syntax(s.into()))?;
        if count == 0 || index >= count {
            return Err(ShardError::Range(s.into()));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_partitions() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.select((0..10).collect()), vec![1, 4, 7]);
        // Every item lands in exactly one shard.
        let mut all: Vec<i32> = (0..3)
            .flat_map(|i| Shard { index: i, count: 3 }.select((0..10).collect()))
            .collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn refuses_bad_shards() {
        assert!(matches!("3/3".parse::<Shard>(), Err(ShardError::Range(_))));
        assert!(matches!("0/0".parse::<Shard>(), Err(ShardError::Range(_))));
        assert!(matches!("a/3".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert!(matches!("2".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert!(matches!(
            "-1/3".parse::<Shard>(),
            Err(ShardError::Syntax(_))
        ));
    }
}
