//! [`SharedStore`] on Valkey or Redis, through the `redis` crate's `ConnectionManager`:
//! one multiplexed connection per process (commands are pipelined on it, so a pool would
//! add nothing but connections), reconnected in the background when it breaks.
//!
//! The manager is made on first use, inside the runtime that uses it: the gateway starts
//! (and is ready) while the store is down; its requests then get the documented answer.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::OnceCell;

use super::{SharedStore, StoreError, StoreKey};
use crate::config::SharedStoreSettings;

/// Valkey/Redis as the shared store.
pub struct RedisStore {
    client: Result<redis::Client, String>,
    config: ConnectionManagerConfig,
    prefix: String,
    manager: OnceCell<ConnectionManager>,
}

impl RedisStore {
    /// The store `settings` describe; nothing is connected yet.
    pub fn new(settings: &SharedStoreSettings) -> RedisStore {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            // Reconnection is retried quickly and briefly: a request never waits on it for
            // more than the command timeout, and the next request tries again.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        RedisStore {
            client: client(settings).map_err(|e| e.to_string()),
            config,
            prefix: settings.key_prefix.clone(),
            manager: OnceCell::new(),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| StoreError::Failed(e.clone()))?;
        self.manager
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(client.clone(), self.config.clone())
            })
            .await
            .cloned()
            .map_err(failed)
    }
}

fn client(settings: &SharedStoreSettings) -> redis::RedisResult<redis::Client> {
    let mut redis_settings = RedisConnectionInfo::default().set_db(i64::from(settings.database));
    if let Some(user) = &settings.username {
        redis_settings = redis_settings.set_username(user);
    }
    if let Some(password) = &settings.password {
        // Compiled from a UTF-8 file.
        redis_settings = redis_settings.set_password(password.expose_str().unwrap_or_default());
    }
    if settings.tls {
        // rustls needs one process-wide provider; the gateway's is aws-lc everywhere.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let info = ConnectionAddr::TcpTls {
            host: settings.host.clone(),
            port: settings.port,
            insecure: false,
            tls_params: None,
        }
        .into_connection_info()?
        .set_redis_settings(redis_settings);
        redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: settings.ca_pem.clone(),
            },
        )
    } else {
        let info = ConnectionAddr::Tcp(settings.host.clone(), settings.port)
            .into_connection_info()?
            .set_redis_settings(redis_settings);
        redis::Client::open(info)
    }
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError::Failed(e.to_string())
}

/// Milliseconds for `PX`, at least 1.
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl SharedStore for RedisStore {
    async fn claim_once(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let mut connection = self.connection().await?;
        let reply: Option<String> = redis::cmd("SET")
            .arg(key.render(&self.prefix))
            .arg(1u8)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let mut connection = self.connection().await?;
        redis::cmd("GET")
            .arg(key.render(&self.prefix))
            .query_async(&mut connection)
            .await
            .map_err(failed)
    }

    async fn set_with_ttl(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection().await?;
        redis::cmd("SET")
            .arg(key.render(&self.prefix))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut connection)
            .await
            .map_err(failed)
    }
}
