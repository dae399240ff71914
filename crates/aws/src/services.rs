//! The deployment's table, bucket, limits and clock, built once per Lambda instance, and the
//! use cases on them: what every function (HTTP or not) is wired from.

use std::sync::Arc;

use crate::{FileTable, S3Store, Settings};
use matbakh_core::clock::{Clock, SystemClock};
use matbakh_core::delivery::{CdnSigner, FilesCdn};
use matbakh_core::limits::Limits;

/// The bucket, the table, the limits and the clock (injected, so expiry is tested without
/// sleeping). HTTP functions add who the caller is (`matbakh_api::Authenticator`).
#[derive(Clone)]
pub struct Services {
    pub store: S3Store,
    pub table: FileTable,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// The files CDN (`FILES_CDN_BASE_URL`): public copies at stable URLs and, once a
    /// function that signs adds the key ([`Services::sign_with`]), private files at signed
    /// URLs. Without it, every URL is a presigned GET of the bucket.
    pub files_cdn: Option<FilesCdn>,
    /// Invalidations at the files CDN (`FILES_DISTRIBUTION_ID`).
    pub files_edge: Option<crate::cdn::Cdn>,
    /// The administrators (`ADMIN_USERS`), where a use case lets them act on anyone's file.
    pub admins: Arc<std::collections::BTreeSet<String>>,
    /// Where the copy of a large public original is asked for ([`Services::copying_later`]:
    /// the notifier, [`crate::queue::public_copies`]). Not from the environment here: a
    /// function that builds `Services` links no SQS client for it.
    pub copy_later: Option<Arc<dyn matbakh_app::ports::CopyLater>>,
}

impl Services {
    /// Builds everything from the environment the SAM template (or `scripts/dev`) sets.
    pub async fn from_env() -> Result<Self, String> {
        let env = |k: &str| std::env::var(k).ok();
        let settings = Settings::from_env().map_err(|e| e.to_string())?;
        let limits = Limits::from_lookup(env).map_err(|e| e.to_string())?;
        let sdk = crate::config::load_sdk_config().await;
        Ok(Services {
            store: S3Store::new(&sdk, &settings.bucket, settings.s3_public_endpoint.as_deref())
                .map_err(|e| e.to_string())?,
            table: FileTable::new(&sdk, &settings.table),
            limits,
            clock: Arc::new(SystemClock),
            files_cdn: env("FILES_CDN_BASE_URL").filter(|v| v.starts_with("http")).map(|v| FilesCdn::new(&v, None)),
            files_edge: crate::cdn::Cdn::from_lookup(&sdk, env),
            admins: Arc::new(matbakh_core::ids::parse_admins(&env("ADMIN_USERS").unwrap_or_default())),
            copy_later: None,
        })
    }

    /// The files CDN signs private URLs with `signer` from now on (the functions that hand out
    /// URLs read it from Secrets Manager at start: [`crate::secrets::cdn_signer`]).
    pub fn sign_with(mut self, signer: Option<CdnSigner>) -> Self {
        if let (Some(cdn), Some(signer)) = (&self.files_cdn, signer) {
            self.files_cdn = Some(FilesCdn::new(cdn.base_url(), Some(signer)));
        }
        self
    }

    /// Copies of large public originals are asked of `later` (`Delivery::ask_for_large_copy`).
    pub fn copying_later(mut self, later: Option<Arc<dyn matbakh_app::ports::CopyLater>>) -> Self {
        self.copy_later = later;
        self
    }

    /// Where browsers get files' bytes, and the public copies, in this deployment.
    pub fn delivery(&self) -> matbakh_app::delivery::Delivery {
        use matbakh_app::ports::EdgeCache;
        matbakh_app::delivery::Delivery {
            objects: Arc::new(self.store.clone()),
            cdn: self.files_cdn.clone(),
            edge: self.files_edge.clone().map(|c| Arc::new(c) as Arc<dyn EdgeCache>),
            clock: self.clock.clone(),
            window: self.limits.image_url_ttl,
            later: self.copy_later.clone(),
        }
    }

    /// The audit trail in this deployment's table.
    pub fn trail(&self) -> matbakh_app::audit::Trail {
        matbakh_app::audit::Trail {
            log: Arc::new(self.table.clone()),
            retention: self.limits.audit_retention,
            clock: self.clock.clone(),
        }
    }

    /// The files use cases on this deployment's table and bucket.
    pub fn files(&self) -> matbakh_app::files::Files {
        matbakh_app::files::Files {
            files: Arc::new(self.table.clone()),
            usage: Arc::new(self.table.clone()),
            counters: Arc::new(self.table.clone()),
            audit: self.trail(),
            objects: Arc::new(self.store.clone()),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
            delivery: self.delivery(),
            admins: self.admins.clone(),
        }
    }

    /// The share-link use cases on this deployment's table and bucket.
    pub fn shares(&self, links: matbakh_app::shares::Links) -> matbakh_app::shares::Shares {
        matbakh_app::shares::Shares {
            shares: Arc::new(self.table.clone()),
            files: Arc::new(self.table.clone()),
            audit: self.trail(),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
            delivery: self.delivery(),
            links,
        }
    }

    /// The single-upload and download use cases on this deployment's table and bucket.
    pub fn uploads(&self) -> matbakh_app::uploads::Uploads {
        matbakh_app::uploads::Uploads {
            files: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            counters: Arc::new(self.table.clone()),
            audit: self.trail(),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
            delivery: self.delivery(),
        }
    }

    /// The multipart upload use cases (REST, Uppy's signRequest and Companion modes) on this
    /// deployment's table and bucket.
    pub fn multipart(&self) -> matbakh_app::multipart::Multipart {
        matbakh_app::multipart::Multipart {
            files: Arc::new(self.table.clone()),
            counters: Arc::new(self.table.clone()),
            uploads: Arc::new(self.table.clone()),
            tokens: Arc::new(self.table.clone()),
            usage: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            audit: self.trail(),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The GDPR erase on this deployment's table and bucket, with the replica, the files CDN, the
    /// migration and the second pass's queue where it has them, recording under pseudonyms
    /// keyed with the settings' key.
    pub fn erasure(&self, settings: crate::config::EraseSettings) -> matbakh_app::erase::Erasure {
        use matbakh_app::ports::{EraseAgainQueue, MigrationRecords, ObjectErasure};
        let crate::config::EraseSettings { pseudonym_key, replica, migration, again } = settings;
        matbakh_app::erase::Erasure {
            accounts: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            replica: replica.map(|r| Arc::new(r) as Arc<dyn ObjectErasure>),
            delivery: self.delivery(),
            pseudonym_key,
            migration: migration.map(|q| Arc::new(q) as Arc<dyn MigrationRecords>),
            again: again.map(|q| Arc::new(q) as Arc<dyn EraseAgainQueue>),
            audit: self.trail(),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Settling arrivals and the one accepted object per key, on this deployment's table and
    /// bucket.
    pub fn settler(&self) -> matbakh_app::settle::Settler {
        matbakh_app::settle::Settler {
            uploads: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            delivery: self.delivery(),
            limits: self.limits.clone(),
        }
    }

    /// Building GDPR export archives on this deployment's table and bucket.
    pub fn archiver(&self) -> matbakh_app::archive::Archiver {
        matbakh_app::archive::Archiver {
            exports: Arc::new(self.table.clone()),
            files: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            audit: self.trail(),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Image URLs of files in this deployment's table, signed with `signer`.
    pub fn images(&self, signer: matbakh_app::images::Signer) -> matbakh_app::images::Images {
        matbakh_app::images::Images {
            files: Arc::new(self.table.clone()),
            counters: Arc::new(self.table.clone()),
            signer,
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The sweep of expired uploads on this deployment's table and bucket.
    pub fn sweeper(&self) -> matbakh_app::sweep::Sweeper {
        matbakh_app::sweep::Sweeper {
            uploads: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The GDPR export use cases on this deployment's table and bucket, queueing to `queue`.
    pub fn exports(&self, queue: Arc<dyn matbakh_app::ports::ExportQueue>) -> matbakh_app::exports::Exports {
        matbakh_app::exports::Exports {
            exports: Arc::new(self.table.clone()),
            queue,
            counters: Arc::new(self.table.clone()),
            objects: Arc::new(self.store.clone()),
            audit: self.trail(),
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }
}
