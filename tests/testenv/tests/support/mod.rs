//! Helpers shared by the self-tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::Debug;
use std::time::Duration;

use kube::runtime::wait::{await_condition, Condition};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// How long a test waits for the cluster to reach a state before failing.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Waits until `condition` holds for the object, or fails the test after [`PATIENCE`].
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, condition: impl Condition<K>) -> Option<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    match tokio::time::timeout(PATIENCE, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(object)) => object,
        Ok(Err(err)) => panic!("watching {name} for {what}: {err}"),
        Err(_) => panic!("{name} did not reach {what} within {PATIENCE:?}"),
    }
}

/// An object from YAML text.
pub fn from_yaml<K: DeserializeOwned>(yaml: &str) -> K {
    match serde_yaml::from_str(yaml) {
        Ok(object) => object,
        Err(err) => panic!("test object does not parse: {err}\n{yaml}"),
    }
}
