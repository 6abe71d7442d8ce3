//! The per-app connection limit across the cluster: each node records how many connections of
//! an app it holds (only apps with `max_connections`), and admitting one more reads every live
//! node's count and takes the slot in the same script, so the limit holds for the whole cluster
//! even when connections arrive at several nodes at once. A dead node's count goes when it is
//! claimed (it leaves the registry) and its record when it is reaped.

use super::keys::escape_app;
use super::scripts::{self, arg, count, int, SCRIPTS};
use super::{ClusterError, Engine};

impl Engine {
    /// Takes a connection slot of `app` on this node unless the cluster already has `max`
    /// connections of it (0: no limit); true if taken.
    pub async fn connection_open(&self, app: &str, max: usize) -> Result<bool, ClusterError> {
        let mut args = self.node_args();
        args.push(arg(&escape_app(app)));
        args.push(arg(&max.to_string()));
        let reply = scripts::run(&self.client, &SCRIPTS.connection_open, args).await?;
        Ok(int(&reply)? > 0)
    }

    /// Gives a connection slot of `app` on this node back; returns the node's count now.
    pub async fn connection_close(&self, app: &str) -> Result<u64, ClusterError> {
        let mut args = self.node_args();
        args.push(arg(&escape_app(app)));
        let reply = scripts::run(&self.client, &SCRIPTS.connection_close, args).await?;
        count(&reply)
    }

    /// Sets this node's connection counts to exactly `held` (app, connections).
    pub async fn restore_connections(&self, held: &[(&str, u64)]) -> Result<(), ClusterError> {
        let mut args = self.node_args();
        for (app, n) in held {
            args.push(arg(&escape_app(app)));
            args.push(arg(&n.to_string()));
        }
        scripts::run(&self.client, &SCRIPTS.connections_restore, args).await?;
        Ok(())
    }
}
