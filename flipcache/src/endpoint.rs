//! Where a shared connection goes: a fixed server, the primary that a set of Sentinels
//! currently names (looked up again at every reconnect, so a failover is followed), or a Redis
//! Cluster found through seed nodes.

use redis::{Client, ProtocolVersion, RedisError};

/// A connection target, with the identity that decides which caches share a connection.
pub(crate) enum Target {
    /// One server, as a redis-rs client describes it.
    Direct(Client),
    /// The primary of `service`, as the Sentinels report it.
    #[cfg(feature = "sentinel")]
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
    /// A Redis Cluster, reached through its seed nodes.
    /// Boxed: a cluster client is far larger than the other variants.
    #[cfg(feature = "cluster")]
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A [`Target`] with what identifies it.
pub(crate) struct Endpoint {
    /// Where to connect.
    pub(crate) target: Target,
    /// Everything that makes a connection different (credentials included): caches whose
    /// endpoints have the same identity share one connection. Never printed.
    pub(crate) identity: String,
    /// Where this connects to, for messages (no credentials).
    pub(crate) name: String,
}

impl Target {
    /// A fixed server.
    pub(crate) fn direct(client: &Client) -> Result<Endpoint, RedisError> {
        tls_provider();
        let info = client.get_connection_info().clone();
        let redis = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(redis);
        // Everything that makes a connection different, credentials included (the Debug form
        // of `ConnectionInfo` hides the password, and two users must never share a socket).
        let settings = info.redis_settings();
        let identity = format!(
            "{:?}|{}|{:?}|{:?}",
            info.addr(),
            settings.db(),
            settings.username(),
            settings.password()
        );
        let name = format!("{}/{}", info.addr(), settings.db());
        Ok(Endpoint {
            target: Target::Direct(Client::open(info)?),
            identity,
            name,
        })
    }

    /// The primary of `service` found through the Sentinels at `sentinels` (URLs). `node` holds
    /// the credentials and database for the data nodes.
    #[cfg(feature = "sentinel")]
    pub(crate) fn sentinel(
        sentinels: &[String],
        service: &str,
        node: redis::RedisConnectionInfo,
    ) -> Result<Endpoint, RedisError> {
        use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
        tls_provider();
        let node_info = node.clone().set_protocol(ProtocolVersion::RESP3);
        let identity = format!(
            "sentinel|{sentinels:?}|{service}|{}|{:?}|{:?}",
            node_info.db(),
            node_info.username(),
            node_info.password()
        );
        let name = format!("sentinel service `{service}` via {}", sentinels.join(","));
        // `build` takes a `String` without the `tls` feature and `impl AsRef<str>` with it.
        #[allow(clippy::unnecessary_to_owned)]
        let client = SentinelClient::build(
            sentinels.iter().map(String::as_str).collect(),
            service.to_owned(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node_info)),
            SentinelServerType::Master,
        )?;
        Ok(Endpoint {
            target: Target::Sentinel(tokio::sync::Mutex::new(client)),
            identity,
            name,
        })
    }

    /// A Redis Cluster reached through the seed nodes `nodes` (URLs; credentials and TLS are
    /// taken from them).
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(nodes: &[String]) -> Result<Endpoint, RedisError> {
        tls_provider();
        let client = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .use_protocol(ProtocolVersion::RESP3)
            .build()?;
        let mut sorted = nodes.to_vec();
        sorted.sort();
        let identity = format!("cluster|{sorted:?}");
        // The endpoint is printed: no credentials in it.
        let name = format!(
            "cluster via {}",
            nodes
                .iter()
                .map(|n| n.rsplit('@').next().unwrap_or(n))
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Endpoint {
            target: Target::Cluster(Box::new(client)),
            identity,
            name,
        })
    }

    /// The one server's client, for a fixed server only (the blocking front reads from it
    /// directly).
    pub(crate) fn direct_client(&self) -> Option<&Client> {
        match self {
            Target::Direct(client) => Some(client),
            #[cfg(feature = "sentinel")]
            Target::Sentinel(_) => None,
            #[cfg(feature = "cluster")]
            Target::Cluster(_) => None,
        }
    }

    /// The client to connect with now (not for a cluster, which connects on its own).
    pub(crate) async fn resolve(&self) -> Result<Client, RedisError> {
        match self {
            Target::Direct(client) => Ok(client.clone()),
            #[cfg(feature = "sentinel")]
            Target::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
            #[cfg(feature = "cluster")]
            Target::Cluster(_) => Err(RedisError::from((
                redis::ErrorKind::Client,
                "a cluster has no single server to resolve",
            ))),
        }
    }
}

/// rustls needs one process-wide crypto provider; install ring's unless the application
/// already installed one.
fn tls_provider() {
    #[cfg(feature = "tls")]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
