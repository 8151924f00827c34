//! How records become rows and back, shared by every backend: each row holds JSON of the shared
//! `nexus_sim` types, so the SQLite and PostgreSQL stores hold byte-identical data and a campaign
//! moves between them unchanged.

use std::time::{SystemTime, UNIX_EPOCH};

use nexus_sim::state::{EnvironmentState, ObjectState, Properties};
use serde::Serialize;

use crate::error::StoreError;
use crate::record::{ObjectRecord, PlayerRecord};

pub(crate) fn to_json(
    value: &impl Serialize,
    campaign_id: &str,
    what: &str,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::InvalidRecord {
        campaign: campaign_id.to_string(),
        problems: vec![format!("{what} cannot be encoded: {e}")],
    })
}

/// Databases store signed 64-bit integers.
pub(crate) fn sql_int(value: u64, campaign_id: &str, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidRecord {
        campaign: campaign_id.to_string(),
        problems: vec![format!("{what} {value} is too large to store")],
    })
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An object's row: kind (for queries by hand), description and state.
pub(crate) fn encode_object(
    object: &ObjectRecord,
    campaign_id: &str,
) -> Result<(String, String, String), StoreError> {
    let what = format!("object {}", object.state.id);
    let kind = match serde_json::to_value(object.desc.kind) {
        Ok(serde_json::Value::String(kind)) => kind,
        _ => format!("{:?}", object.desc.kind),
    };
    Ok((
        kind,
        to_json(&object.desc, campaign_id, &what)?,
        to_json(&object.state, campaign_id, &what)?,
    ))
}

fn corrupt(campaign_id: &str, what: String, message: String) -> StoreError {
    StoreError::CorruptRecord {
        campaign: campaign_id.to_string(),
        what,
        message,
    }
}

pub(crate) fn decode_object(
    campaign_id: &str,
    id: i64,
    description: &str,
    state: &str,
) -> Result<ObjectRecord, StoreError> {
    let what = || format!("object {id}");
    let desc = serde_json::from_str(description)
        .map_err(|e| corrupt(campaign_id, what(), e.to_string()))?;
    let state: ObjectState =
        serde_json::from_str(state).map_err(|e| corrupt(campaign_id, what(), e.to_string()))?;
    if i64::from(state.id) != id {
        return Err(corrupt(
            campaign_id,
            what(),
            format!("its state says id {}", state.id),
        ));
    }
    Ok(ObjectRecord { desc, state })
}

pub(crate) fn decode_player(
    campaign_id: &str,
    name: &str,
    json: &str,
) -> Result<PlayerRecord, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| corrupt(campaign_id, format!("player {name:?}"), e.to_string()))
}

pub(crate) fn decode_environment(
    campaign_id: &str,
    json: &str,
) -> Result<EnvironmentState, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| corrupt(campaign_id, "environment".to_string(), e.to_string()))
}

pub(crate) fn decode_world(campaign_id: &str, json: &str) -> Result<Properties, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| corrupt(campaign_id, "world data".to_string(), e.to_string()))
}
