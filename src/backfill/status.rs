//! `backfill status`: per-stage progress read from the staging markers.
//!
//! A shard is *done* when its `done.json` exists; otherwise its newest attempt decides:
//! *failed* when the attempt recorded an error (`_failed.json`) or its heartbeat is older than
//! the stale limit (a killed task writes nothing: it goes stale), *running* while the heartbeat
//! is fresh, and *pending* when no attempt started.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::{AttemptFailure, AttemptInfo, Plan, Stage, Staging, list_below, read_json};
use crate::clock::Clock;
use crate::error::Result;
use crate::store::Location;

/// Marker objects read at once.
const READS: usize = 32;

/// A shard that is not done and not running.
#[derive(Debug, Clone, Serialize)]
pub struct FailedShard {
    /// The shard.
    pub shard: usize,
    /// Its newest attempt.
    pub attempt: String,
    /// Where it ran.
    pub hostname: Option<String>,
    /// The error it recorded, or why it is taken for dead.
    pub reason: String,
    /// Attempts started so far.
    pub attempts: usize,
}

/// A shard with a fresh heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct RunningShard {
    /// The shard.
    pub shard: usize,
    /// Its attempt.
    pub attempt: String,
    /// Where it runs.
    pub hostname: String,
    /// Since when.
    pub started: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat: DateTime<Utc>,
}

/// Progress of one stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageStatus {
    /// Shards of the stage.
    pub shards: usize,
    /// Shards done.
    pub done: Vec<usize>,
    /// Shards running.
    pub running: Vec<RunningShard>,
    /// Shards whose newest attempt failed or went stale.
    pub failed: Vec<FailedShard>,
    /// Shards never started.
    pub pending: Vec<usize>,
    /// Map: items written; reduce: rows written (done shards).
    pub items: u64,
    /// Map: keys not ingested (done shards).
    pub failed_items: u64,
    /// Map: keys of the done shards; reduce: rows read.
    pub input: u64,
    /// Files written (done shards).
    pub files: u64,
    /// Bytes written (done shards).
    pub bytes: u64,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The plan.
    pub plan_id: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// The inventory.
    pub inventory: String,
    /// The catalog the commit goes to.
    pub catalog: String,
    /// Keys planned.
    pub keys: u64,
    /// Keys left out as known.
    pub skipped_known: u64,
    /// Malformed inventory rows.
    pub malformed: u64,
    /// Map stage.
    pub map: StageStatus,
    /// Reduce stage.
    pub reduce: StageStatus,
    /// Every map shard is done: reduce can start.
    pub ready_to_reduce: bool,
    /// Every shard is done: commit can run.
    pub ready_to_commit: bool,
}

/// The progress of the backfill staged at `staging`; a shard whose heartbeat is older than
/// `stale_after` at `clock`'s now is reported failed.
pub async fn status(
    staging: &str,
    stale_after: chrono::Duration,
    clock: &dyn Clock,
) -> Result<StatusReport> {
    let staging = Staging::parse(staging)?;
    let plan = staging.read_plan().await?;
    let now = clock.now();
    let mut map = stage(&staging, &plan, Stage::Map, now, stale_after).await?;
    for d in super::reduce::map_markers(&staging, &plan)
        .await?
        .into_values()
    {
        map.items += d.items;
        map.failed_items += d.failed;
        map.input += d.keys;
        map.files += d.files.len() as u64;
        map.bytes += d.bytes;
    }
    let mut reduce = stage(&staging, &plan, Stage::Reduce, now, stale_after).await?;
    for j in reduce.done.clone() {
        if let Some(d) = super::reduce::finished(&staging, &plan, j).await? {
            reduce.items += d.rows_out;
            reduce.input += d.rows_in;
            reduce.files += d.files.len() as u64;
            reduce.bytes += d.bytes;
        }
    }
    Ok(StatusReport {
        ready_to_reduce: map.done.len() == plan.map_shards,
        ready_to_commit: map.done.len() == plan.map_shards
            && reduce.done.len() == plan.reduce_shards,
        plan_id: plan.plan_id.clone(),
        created: plan.created,
        inventory: plan.inventory.url.clone(),
        catalog: plan.catalog.clone(),
        keys: plan.keys,
        skipped_known: plan.skipped_known,
        malformed: plan.malformed,
        map,
        reduce,
    })
}

#[derive(Default)]
struct ShardObjects {
    done: bool,
    /// attempt → (has _attempt.json, has _failed.json)
    attempts: BTreeMap<String, (bool, bool)>,
}

async fn stage(
    staging: &Staging,
    plan: &Plan,
    stage: Stage,
    now: DateTime<Utc>,
    stale_after: chrono::Duration,
) -> Result<StageStatus> {
    let shards = match stage {
        Stage::Map => plan.map_shards,
        Stage::Reduce => plan.reduce_shards,
    };
    let dir = staging.root().join(stage.name());
    let base = dir.prefix().as_ref().len();
    let mut by_shard: BTreeMap<usize, ShardObjects> = BTreeMap::new();
    for meta in list_below(&dir).await? {
        let key = meta.location.as_ref();
        let rel = key.get(base..).unwrap_or(key).trim_start_matches('/');
        let mut parts = rel.split('/');
        let Some(Ok(i)) = parts.next().map(str::parse::<usize>) else {
            continue;
        };
        let entry = by_shard.entry(i).or_default();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("done.json"), None, _) => entry.done = true,
            (Some(attempt), Some(name), None) => {
                let a = entry.attempts.entry(attempt.to_string()).or_default();
                match name {
                    "_attempt.json" => a.0 = true,
                    "_failed.json" => a.1 = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut out = StageStatus {
        shards,
        ..Default::default()
    };
    let mut undecided = Vec::new();
    for i in 0..shards {
        match by_shard.remove(&i) {
            Some(s) if s.done => out.done.push(i),
            Some(s) if !s.attempts.is_empty() => undecided.push((i, s)),
            _ => out.pending.push(i),
        }
    }
    let looked: Vec<Result<Decided>> = futures::stream::iter(undecided)
        .map(|(i, s)| {
            let shard_dir = staging.shard_dir(stage, i);
            async move { decide(i, s, &shard_dir, now, stale_after).await }
        })
        .buffer_unordered(READS)
        .collect()
        .await;
    for d in looked {
        match d? {
            Decided::Running(r) => out.running.push(r),
            Decided::Failed(f) => out.failed.push(f),
        }
    }
    out.running.sort_by_key(|r| r.shard);
    out.failed.sort_by_key(|f| f.shard);
    Ok(out)
}

enum Decided {
    Running(RunningShard),
    Failed(FailedShard),
}

/// The state of a shard that is not done, from its newest attempt.
async fn decide(
    shard: usize,
    s: ShardObjects,
    dir: &Location,
    now: DateTime<Utc>,
    stale_after: chrono::Duration,
) -> Result<Decided> {
    let attempts = s.attempts.len();
    let mut newest: Option<(AttemptInfo, bool)> = None;
    let mut unmarked = None;
    for (attempt, (has_info, failed)) in s.attempts {
        if !has_info {
            unmarked.get_or_insert(attempt);
            continue;
        }
        let info: Option<AttemptInfo> =
            read_json(&dir.join(&format!("{attempt}/_attempt.json"))).await?;
        if let Some(info) = info
            && newest
                .as_ref()
                .is_none_or(|(n, _)| info.started > n.started)
        {
            newest = Some((info, failed));
        }
    }
    let Some((info, failed)) = newest else {
        return Ok(Decided::Failed(FailedShard {
            shard,
            attempt: unmarked.unwrap_or_default(),
            hostname: None,
            reason: "an attempt left outputs without a marker".into(),
            attempts,
        }));
    };
    if failed {
        let f: Option<AttemptFailure> =
            read_json(&dir.join(&format!("{}/_failed.json", info.attempt))).await?;
        return Ok(Decided::Failed(FailedShard {
            shard,
            attempt: info.attempt,
            hostname: Some(info.hostname),
            reason: f.map_or_else(|| "failed".to_string(), |f| f.error),
            attempts,
        }));
    }
    let silent = now - info.heartbeat;
    if silent > stale_after {
        return Ok(Decided::Failed(FailedShard {
            shard,
            attempt: info.attempt,
            hostname: Some(info.hostname),
            reason: format!(
                "no heartbeat for {} (pid {}; killed?)",
                crate::lock::human_duration(silent),
                info.pid
            ),
            attempts,
        }));
    }
    Ok(Decided::Running(RunningShard {
        shard,
        attempt: info.attempt,
        hostname: info.hostname,
        started: info.started,
        heartbeat: info.heartbeat,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backfill::map::MapDone;
    use crate::backfill::{Heartbeat, put_json};
    use crate::clock::TestClock;

    #[tokio::test]
    async fn shards_are_done_running_failed_stale_or_pending_by_their_markers() {
        let (staging, plan) = crate::backfill::tests::plan_at("memory://status/s").await;
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Arc::new(TestClock::new(t0));
        // Map 0 done; 1 running; 2 failed with an error; 3 never started.
        let done = MapDone {
            plan_id: plan.plan_id.clone(),
            shard: 0,
            attempt: "a0".into(),
            items: 5,
            failed: 1,
            keys: 6,
            bytes: 10,
            ..Default::default()
        };
        put_json(&staging.done(Stage::Map, 0), &done).await.unwrap();
        let running = Heartbeat::start(staging.attempt(Stage::Map, 1, "a1"), "a1", clock.clone())
            .await
            .unwrap();
        let failed = Heartbeat::start(staging.attempt(Stage::Map, 2, "a2"), "a2", clock.clone())
            .await
            .unwrap();
        let boom = crate::error::Error::Inconsistent("boom".into());
        failed.stop(Some(&boom), t0).await;
        let stale = chrono::Duration::seconds(120);

        let st = status(staging.root().url(), stale, clock.as_ref())
            .await
            .unwrap();
        assert_eq!(st.map.done, [0]);
        assert_eq!((st.map.items, st.map.failed_items, st.map.input), (5, 1, 6));
        assert_eq!(st.map.running.len(), 1);
        assert_eq!(st.map.running[0].shard, 1);
        assert_eq!(st.map.failed.len(), 1);
        assert_eq!(
            (st.map.failed[0].shard, st.map.failed[0].reason.as_str()),
            (2, "boom")
        );
        assert_eq!(st.map.pending, [3]);
        assert_eq!(st.reduce.pending, [0, 1]);
        assert!(!st.ready_to_reduce);

        // A silent attempt (killed: no more heartbeats) turns failed once it is stale.
        drop(running);
        clock.advance(chrono::Duration::seconds(121));
        let st = status(staging.root().url(), stale, clock.as_ref())
            .await
            .unwrap();
        assert!(st.map.running.is_empty());
        let silent = st.map.failed.iter().find(|f| f.shard == 1).unwrap();
        assert!(
            silent.reason.starts_with("no heartbeat for 2m"),
            "{}",
            silent.reason
        );

        // A newer attempt of the failed shard is what counts.
        clock.advance(chrono::Duration::seconds(1));
        let _retry = Heartbeat::start(staging.attempt(Stage::Map, 2, "a3"), "a3", clock.clone())
            .await
            .unwrap();
        let st = status(staging.root().url(), stale, clock.as_ref())
            .await
            .unwrap();
        assert_eq!(st.map.running.len(), 1);
        assert_eq!(
            (st.map.running[0].shard, st.map.running[0].attempt.as_str()),
            (2, "a3")
        );
    }
}
