//! Table locations: a local file, directory or glob, or an object_store URL (`s3://`, `gs://`,
//! `az://`, `http(s)://`, also with a glob in the last path segments).
//!
//! Object stores take their credentials and endpoints from the standard environment variables
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as object_store's builders define them.

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::error::{ConnectorError, Result};

/// A resolved location: its URL (with an optional glob), and the store holding it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The location as the user wrote it.
    pub text: String,
    /// The parsed URL (local paths become absolute `file://` URLs).
    pub url: ListingTableUrl,
    /// The store serving `url`.
    pub store: Arc<dyn ObjectStore>,
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Location {
    /// Parses `text` and finds (or creates and registers in the session) its object store.
    pub fn resolve(text: &str, state: &dyn Session) -> Result<Location> {
        let bad = |detail: String| ConnectorError::Location {
            location: text.to_string(),
            detail,
        };
        let has_scheme = text.contains("://");
        let url = if has_scheme && !text.starts_with("file://") && is_glob(text) {
            // ListingTableUrl only recognises globs in local paths: split off the glob part.
            let cut = text[..text.find(['*', '?', '[']).unwrap_or(text.len())]
                .rfind('/')
                .unwrap_or(0);
            let (base, glob) = text.split_at(cut + 1);
            ListingTableUrl::parse(base)
                .and_then(|u| u.with_glob(glob))
                .map_err(|e| bad(e.to_string()))?
        } else {
            ListingTableUrl::parse(text).map_err(|e| bad(e.to_string()))?
        };
        let store_url = url.object_store();
        let runtime = state.runtime_env();
        let store = match runtime.object_store(&store_url) {
            Ok(s) => s,
            Err(_) => {
                let store = build_store(&store_url).map_err(|e| bad(e.to_string()))?;
                runtime.register_object_store(store_url.as_ref(), Arc::clone(&store));
                store
            }
        };
        Ok(Location {
            text: text.to_string(),
            url,
            store,
        })
    }

    /// The object store URL (`scheme://authority`).
    pub fn store_url(&self) -> ObjectStoreUrl {
        self.url.object_store()
    }

    /// The Parquet files at this location, sorted by path. A location naming one object is that
    /// object (whatever its extension); a directory, prefix or glob yields its `.parquet` files.
    pub async fn list(&self, state: &dyn Session) -> Result<Vec<ObjectMeta>> {
        let prefix = self.url.prefix();
        if !self.url.is_collection() && !is_glob(&self.text) {
            match self.store.head(prefix).await {
                Ok(meta) => return Ok(vec![meta]),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut files: Vec<ObjectMeta> = self
            .url
            .list_all_files(state, self.store.as_ref(), ".parquet")
            .await
            .map_err(|e| not_found_or(e, &self.text))?
            .try_collect()
            .await
            .map_err(|e| not_found_or(e, &self.text))?;
        files.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        if files.is_empty() {
            // A prefix with no objects at all is a missing path; one with other files has no Parquet.
            let any = self.store.list(Some(prefix)).try_next().await.ok().flatten().is_some();
            return Err(if any || self.url.is_collection() && self.exists_as_dir() {
                ConnectorError::NoFiles(self.text.clone())
            } else {
                ConnectorError::NotFound(self.text.clone())
            });
        }
        Ok(files)
    }

    fn exists_as_dir(&self) -> bool {
        self.url.scheme() == "file" && std::path::Path::new(&format!("/{}", self.url.prefix())).is_dir()
    }
}

fn not_found_or(e: datafusion::error::DataFusionError, text: &str) -> ConnectorError {
    let msg = e.to_string();
    if msg.contains("not found") || msg.contains("No such file") {
        ConnectorError::NotFound(text.to_string())
    } else {
        ConnectorError::DataFusion(e)
    }
}

/// An object store for `url` configured from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
fn build_store(url: &ObjectStoreUrl) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let env =
        std::env::vars().filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_"));
    let (store, _) = object_store::parse_url_opts(url.as_ref(), env)?;
    Ok(Arc::from(store))
}
