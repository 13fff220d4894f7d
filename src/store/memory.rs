//! Stores that keep nothing past the process, for commands that run without a database.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{OAuthToken, StoreError, TokenStore};

/// OAuth authorizations in memory.
#[derive(Default)]
pub struct MemoryTokens {
    tokens: Mutex<BTreeMap<(String, String), OAuthToken>>,
}

impl MemoryTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), OAuthToken>> {
        // Each critical section is one map operation: a panic cannot leave it half done.
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl TokenStore for MemoryTokens {
    async fn save_token(&self, token: &OAuthToken) -> Result<(), StoreError> {
        let key = (token.client.clone(), token.subject.clone());
        self.lock().insert(key, token.clone());
        Ok(())
    }

    async fn token(&self, client: &str, subject: &str) -> Result<Option<OAuthToken>, StoreError> {
        Ok(self
            .lock()
            .get(&(client.to_string(), subject.to_string()))
            .cloned())
    }

    async fn tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        Ok(self
            .lock()
            .values()
            .map(|token| OAuthToken {
                secret: String::new(),
                ..token.clone()
            })
            .collect())
    }

    async fn forget_token(&self, client: &str, subject: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .remove(&(client.to_string(), subject.to_string()))
            .is_some())
    }
}
