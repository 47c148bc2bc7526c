//! Which shard a task is: `--shard`, else the index variable of the scheduler running it.
//!
//! | scheduler | variable | base |
//! |---|---|---|
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` | 0 |
//! | AWS Batch array job | `AWS_BATCH_JOB_ARRAY_INDEX` | 0 |
//! | Slurm job array | `SLURM_ARRAY_TASK_ID` | 0 |
//! | GitHub Actions matrix | none: the workflow passes `--shard ${{ matrix.shard }}` | 0 |
//!
//! The first source that is set wins, in the order of the table; a set variable that is not a
//! non-negative integer is an error naming it (a silent fallback would run the wrong shard).
//!
//! A task's shard is its index as given, so a resubmission of one index (`sbatch --array=3`)
//! runs that shard. Arrays numbered from another base (`--array=1-64`) say so explicitly with
//! `EARTHCATALOG_SHARD_BASE=1`, which is subtracted from a scheduler variable (never from
//! `--shard`); it is never inferred from the array's range, which a resubmission changes.

use crate::error::{Error, Result};

/// Kubernetes Indexed Job.
pub const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
/// AWS Batch array job.
pub const BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
/// Slurm job array.
pub const SLURM_INDEX: &str = "SLURM_ARRAY_TASK_ID";
/// The index of a scheduler's first task, when arrays are not numbered from 0 (explicit).
pub const SHARD_BASE: &str = "EARTHCATALOG_SHARD_BASE";

/// Where a shard index came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardSource {
    /// `--shard`.
    Flag,
    /// An environment variable (its name).
    Env(&'static str),
}

/// The shard index of this task among `count` shards: `flag`, else the first scheduler
/// variable `env` returns (see the module docs). [`Error::InvalidArgument`] for `--shard`
/// when none is set, when a variable is not an index, or when the index is not below `count`.
pub fn shard_index(
    flag: Option<usize>,
    count: usize,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(usize, ShardSource)> {
    let (index, source) = match flag {
        Some(i) => (i, ShardSource::Flag),
        None => from_env(&env)?,
    };
    if index >= count {
        let from = match &source {
            ShardSource::Flag => "--shard".to_string(),
            ShardSource::Env(name) => format!("{name} (as the shard index)"),
        };
        return Err(Error::invalid_argument(
            "--shard",
            format!(
                "{from} is {index}, but the plan has {count} shard(s) of this stage: indexes \
                 0..={}",
                count.saturating_sub(1)
            ),
        ));
    }
    Ok((index, source))
}

fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<(usize, ShardSource)> {
    let parse = |name: &'static str| -> Result<Option<i64>> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                Error::invalid_argument("--shard", format!("{name}={v:?} is not a shard index"))
            }),
        }
    };
    let base = parse(SHARD_BASE)?.unwrap_or(0);
    for name in [K8S_INDEX, BATCH_INDEX, SLURM_INDEX] {
        if let Some(id) = parse(name)? {
            let i = id.checked_sub(base).and_then(|d| usize::try_from(d).ok());
            let i = i.ok_or_else(|| {
                let why = if base == 0 {
                    "negative".to_string()
                } else {
                    format!("below {SHARD_BASE}={base}")
                };
                Error::invalid_argument("--shard", format!("{name}={id} is {why}"))
            })?;
            return Ok((i, ShardSource::Env(name)));
        }
    }
    Err(Error::invalid_argument(
        "--shard",
        format!(
            "no shard index: pass --shard N, or run as a task of a Kubernetes Indexed Job \
             ({K8S_INDEX}), an AWS Batch array job ({BATCH_INDEX}) or a Slurm array \
             ({SLURM_INDEX}); none of them is set"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn each_scheduler_variable_gives_the_index() {
        assert_eq!(
            shard_index(None, 8, env(&[(K8S_INDEX, "3")])).unwrap(),
            (3, ShardSource::Env(K8S_INDEX))
        );
        assert_eq!(
            shard_index(None, 8, env(&[(BATCH_INDEX, "7")])).unwrap(),
            (7, ShardSource::Env(BATCH_INDEX))
        );
        // A resubmission of one index runs that shard: Slurm's SLURM_ARRAY_TASK_MIN (3 for
        // `sbatch --array=3`) is not an offset.
        assert_eq!(
            shard_index(
                None,
                8,
                env(&[(SLURM_INDEX, "3"), ("SLURM_ARRAY_TASK_MIN", "3")])
            )
            .unwrap(),
            (3, ShardSource::Env(SLURM_INDEX))
        );
        // 1-based arrays say so: ids 1..=8 are shards 0..=7.
        assert_eq!(
            shard_index(None, 8, env(&[(SLURM_INDEX, "8"), (SHARD_BASE, "1")])).unwrap(),
            (7, ShardSource::Env(SLURM_INDEX))
        );
        assert_eq!(
            shard_index(Some(0), 8, env(&[(SLURM_INDEX, "8"), (SHARD_BASE, "1")]))
                .unwrap()
                .0,
            0
        );
        // The flag wins over any variable; Kubernetes over Batch over Slurm.
        assert_eq!(
            shard_index(Some(1), 8, env(&[(K8S_INDEX, "3")])).unwrap(),
            (1, ShardSource::Flag)
        );
        assert_eq!(
            shard_index(None, 8, env(&[(BATCH_INDEX, "5"), (K8S_INDEX, "4")]))
                .unwrap()
                .0,
            4
        );
    }

    #[test]
    fn missing_bad_and_out_of_range_indexes_are_usage_errors() {
        let err = shard_index(None, 8, env(&[])).unwrap_err();
        assert_eq!(err.category(), crate::error::Category::Usage);
        let msg = err.to_string();
        for name in ["--shard", K8S_INDEX, BATCH_INDEX, SLURM_INDEX] {
            assert!(msg.contains(name), "{msg}");
        }
        let msg = shard_index(None, 8, env(&[(K8S_INDEX, "x")]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("JOB_COMPLETION_INDEX=\"x\""), "{msg}");
        let msg = shard_index(None, 8, env(&[(BATCH_INDEX, "8")]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("AWS_BATCH_JOB_ARRAY_INDEX") && msg.contains("0..=7"),
            "{msg}"
        );
        assert!(shard_index(Some(8), 8, env(&[])).is_err());
        let msg = shard_index(None, 8, env(&[(SLURM_INDEX, "0"), (SHARD_BASE, "1")]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("below EARTHCATALOG_SHARD_BASE=1"), "{msg}");
        // An empty variable counts as unset.
        assert_eq!(
            shard_index(None, 2, env(&[(K8S_INDEX, ""), (BATCH_INDEX, "1")]))
                .unwrap()
                .0,
            1
        );
    }
}
