//! `COPY (query) TO 'dir/' STORED AS PARQUET`: every rank writes its rows to its own part file.
//!
//! Part `part-<rank>-of-<P>.parquet` (zero-padded, so path order is rank order and the parts
//! read back in the query's global row order) is first written under a temporary name
//! (`.part-…parquet.<job>.tmp`), and renamed only after every rank wrote its part. When any
//! rank fails, every rank removes what it wrote and returns the same error: no part remains.
//! The target must be a new or empty directory (local path or object_store URL); a target
//! ending in `.parquet` is written as that one file, which needs P = 1.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::config::{ConfigFileType, TableOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use datafusion::prelude::SessionContext;
use engine::Comm;
use engine::comm::ReduceOp;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{ConnectorError, Result};
use crate::location::Location;

/// Where COPY writes: the store and the final and temporary paths of this rank's part.
struct Target {
    store: Arc<dyn ObjectStore>,
    part: Path,
    tmp: Path,
    /// The directory (prefix) written to.
    dir: Path,
    /// The job id in temporary names.
    job: String,
    /// The local directory COPY created (removed again on failure).
    created_dir: Option<std::path::PathBuf>,
}

/// Collective over `comm`. Writes `stream` (this rank's rows of the query) to `target` as Parquet, one part
/// per rank, atomically (see the module documentation). `options` are COPY's `OPTIONS (…)`
/// (Parquet writer settings such as `compression`). Returns the rows written on all ranks.
pub async fn copy_to_parquet(
    ctx: &SessionContext,
    comm: &Comm,
    stream: SendableRecordBatchStream,
    target: &str,
    options: &[(String, String)],
) -> Result<u64> {
    let prepared = prepare(ctx, comm, target, options).await;
    let (dest, props) = comm.agree(prepared)?;
    let schema = stream.schema();
    let written = write_part(&dest, stream, schema, props).await;
    if let Err(e) = comm.agree(written.as_ref().map(|_| ()).map_err(|e| e.to_string())) {
        dest.store.delete(&dest.tmp).await.ok();
        cleanup_dir(comm, &dest).await;
        return Err(e.into());
    }
    let renamed = dest.store.rename(&dest.tmp, &dest.part).await;
    if let Err(e) = comm.agree(renamed) {
        dest.store.delete(&dest.tmp).await.ok();
        dest.store.delete(&dest.part).await.ok();
        cleanup_dir(comm, &dest).await;
        return Err(e.into());
    }
    let rows = written.unwrap_or(0);
    Ok(comm.allreduce(&[rows], ReduceOp::Sum)?[0])
}

/// Resolves the target, refuses a non-empty one, and agrees on a job id.
async fn prepare(
    ctx: &SessionContext,
    comm: &Comm,
    target: &str,
    options: &[(String, String)],
) -> Result<(Target, WriterProperties)> {
    let state = ctx.state();
    let props = writer_properties(ctx, options)?;
    let single = target.ends_with(".parquet");
    if single && comm.size() > 1 {
        return Err(ConnectorError::Copy(format!(
            "target '{target}' is one file, but {} ranks write one part each; end the target with '/' to write a directory",
            comm.size()
        )));
    }
    let dir_text = if single || target.ends_with('/') {
        target.to_string()
    } else {
        format!("{target}/")
    };
    let location = Location::resolve(&dir_text, &state)?;
    let prefix = location.url.prefix().clone();
    let existing = if single {
        location.store.head(&prefix).await.is_ok()
    } else {
        let mut listing = location.store.list(Some(&prefix));
        listing.next().await.transpose()?.is_some()
    };
    if existing {
        return Err(ConnectorError::Copy(format!(
            "target '{target}' already exists and is not empty; choose a new or empty location"
        )));
    }
    let local_dir =
        (location.url.scheme() == "file" && !single).then(|| std::path::PathBuf::from(format!("/{prefix}")));
    let created_dir = local_dir.filter(|d| !d.exists());
    // A job id shared by all ranks names the temporary files.
    let job = comm.bcast_vec(vec![std::process::id() as u64 ^ nanos()], 0)?[0];
    let (part, tmp) = if single {
        let name = prefix.filename().unwrap_or("out.parquet").to_string();
        let parent: Path = prefix.parts().take(prefix.parts().count().saturating_sub(1)).collect();
        (prefix.clone(), parent.clone().join(format!(".{name}.{job:x}.tmp")))
    } else {
        let name = format!("part-{:05}-of-{:05}.parquet", comm.rank(), comm.size());
        (
            prefix.clone().join(name.as_str()),
            prefix.clone().join(format!(".{name}.{job:x}.tmp")),
        )
    };
    let dir: Path = if single {
        tmp.parts().take(tmp.parts().count() - 1).collect()
    } else {
        prefix.clone()
    };
    Ok((
        Target {
            store: location.store,
            part,
            tmp,
            dir,
            job: format!(".{job:x}"),
            created_dir,
        },
        props,
    ))
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Parquet writer settings: the session's defaults with COPY's options applied.
fn writer_properties(ctx: &SessionContext, options: &[(String, String)]) -> Result<WriterProperties> {
    let mut table: TableOptions = ctx.state().default_table_options();
    table.set_config_format(ConfigFileType::PARQUET);
    let map = options
        .iter()
        .map(|(k, v)| {
            let k = k.to_lowercase();
            (if k.contains('.') { k } else { format!("format.{k}") }, v.clone())
        })
        .collect();
    table
        .alter_with_string_hash_map(&map)
        .map_err(|e| ConnectorError::Copy(e.strip_backtrace().to_string()))?;
    // The Arrow writer embeds the Arrow schema itself; DataFusion's check for it does not apply.
    table.parquet.global.skip_arrow_metadata = true;
    Ok(WriterPropertiesBuilder::try_from(&table.parquet)
        .map_err(|e| ConnectorError::Copy(e.strip_backtrace().to_string()))?
        .build())
}

/// Writes this rank's rows to its temporary file; returns the row count.
async fn write_part(
    dest: &Target,
    mut stream: SendableRecordBatchStream,
    schema: SchemaRef,
    props: WriterProperties,
) -> Result<u64> {
    let sink = BufWriter::new(Arc::clone(&dest.store), dest.tmp.clone());
    let mut writer =
        AsyncArrowWriter::try_new(sink, schema, Some(props)).map_err(|e| ConnectorError::Copy(e.to_string()))?;
    let mut rows = 0u64;
    let result: Result<()> = async {
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer
                .write(&batch)
                .await
                .map_err(|e| ConnectorError::Copy(e.to_string()))?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            writer.close().await.map_err(|e| ConnectorError::Copy(e.to_string()))?;
            Ok(rows)
        }
        Err(e) => {
            // Abandon the upload; whatever reached the store is deleted by the caller.
            drop(writer);
            Err(e)
        }
    }
}

/// After a failure: rank 0 removes anything left with this job's id (partial uploads), and
/// the local directory COPY created, if it is empty again.
async fn cleanup_dir(comm: &Comm, dest: &Target) {
    comm.barrier();
    if comm.rank() == 0 {
        let leftovers: Vec<Path> = dest
            .store
            .list(Some(&dest.dir))
            .filter_map(|m| async move { m.ok().map(|m| m.location) })
            .filter(|p| std::future::ready(p.as_ref().contains(&dest.job)))
            .collect()
            .await;
        for p in leftovers {
            dest.store.delete(&p).await.ok();
        }
        if let Some(dir) = &dest.created_dir {
            std::fs::remove_dir(dir).ok();
        }
    }
}
