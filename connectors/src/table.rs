//! [`DistributedParquetTable`]: a Parquet table split row-wise over the ranks.
//!
//! Every rank holds the same file list, schema, statistics and row-group assignment, and builds
//! the same scan: `target_partitions` (= P × k, k partitions per rank) output partitions,
//! partitions r·k … r·k + k − 1 being rank r's row groups in k runs (files in path order, row
//! groups in file order: the partitions in order hold the table in order). A rank executes only
//! its own partitions (the exchanges of `udfs::exchange` see to that); projection and predicate pushdown (row-group statistics,
//! page index, row filters) apply. The scan's object store URL carries the
//! [`RANK_SPLIT_PREFIX`] so that plan rewrites recognise it ([`is_rank_split_scan`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use engine::Comm;
use object_store::ObjectMeta;
use object_store::path::Path;

use crate::assign::assign_row_groups;
use crate::error::{ConnectorError, Result};
use crate::location::Location;

/// One Parquet file of the table.
#[derive(Debug, Clone)]
pub struct ParquetFile {
    /// The object (path and size).
    pub meta: ObjectMeta,
    /// Rows of each row group.
    pub row_group_rows: Vec<u64>,
    /// The rank reading each row group.
    pub owners: Vec<usize>,
}

/// A Parquet table distributed row-wise over the ranks (see the module documentation).
#[derive(Debug)]
pub struct DistributedParquetTable {
    /// The location as given.
    location: String,
    /// The store holding the files.
    store_url: ObjectStoreUrl,
    /// The global schema.
    schema: SchemaRef,
    /// Global statistics (the same on every rank).
    statistics: Statistics,
    /// Every file, in path order, with this rank's row groups.
    files: Vec<ParquetFile>,
    /// Rows each rank reads.
    rows_per_rank: Vec<u64>,
}

impl DistributedParquetTable {
    /// Collective over `comm`. Lists the location on rank 0 (every rank then uses that list), reads the
    /// footers, checks that the files share one schema, merges their statistics and assigns row
    /// groups to ranks ([`crate::assign`]). Any rank's failure is an error on every rank.
    pub async fn open(comm: &Comm, text: &str, state: &dyn Session) -> Result<Self> {
        let location = comm.agree(Location::resolve(text, state))?;
        let listed = if comm.rank() == 0 {
            location.list(state).await
        } else {
            Ok(Vec::new())
        };
        let listed = comm.agree(listed)?;
        let files = broadcast_listing(comm, listed)?;
        let opened = read_footers(&location, &files, state).await;
        let (schema, statistics, row_group_rows) = comm.agree(opened)?;
        let flat: Vec<u64> = row_group_rows.iter().flatten().copied().collect();
        let owner = assign_row_groups(&flat, comm.size());
        let mut rows_per_rank = vec![0u64; comm.size()];
        let mut next = 0;
        let files = files
            .into_iter()
            .zip(row_group_rows)
            .map(|(meta, rows)| {
                let owners = owner[next..next + rows.len()].to_vec();
                next += rows.len();
                for (&o, &n) in owners.iter().zip(&rows) {
                    rows_per_rank[o] += n;
                }
                ParquetFile {
                    meta,
                    row_group_rows: rows,
                    owners,
                }
            })
            .collect();
        Ok(DistributedParquetTable {
            location: text.to_string(),
            store_url: rank_split_url(&location, state)?,
            schema,
            statistics,
            files,
            rows_per_rank,
        })
    }

    /// The location as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The files, in path order.
    pub fn files(&self) -> &[ParquetFile] {
        &self.files
    }

    /// Rows each rank reads (rank order); they add up to the table's rows.
    pub fn rows_per_rank(&self) -> &[u64] {
        &self.rows_per_rank
    }

    /// Total rows of the table.
    pub fn num_rows(&self) -> u64 {
        self.rows_per_rank.iter().sum()
    }
}

/// Rank 0's file list, on every rank (paths and sizes).
fn broadcast_listing(comm: &Comm, listed: Vec<ObjectMeta>) -> Result<Vec<ObjectMeta>> {
    let text: String = listed
        .iter()
        .map(|m| format!("{}\t{}\n", m.size, m.location.as_ref()))
        .collect();
    let bytes = comm.bcast_bytes(text.into_bytes(), 0)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(size, path)| ObjectMeta {
            location: Path::parse(path).unwrap_or_else(|_| Path::from(path)),
            last_modified: Default::default(),
            size: size.parse().unwrap_or(0),
            e_tag: None,
            version: None,
        })
        .collect())
}

type Footers = (SchemaRef, Statistics, Vec<Vec<u64>>);

/// Schema, merged statistics and row-group sizes of `files`.
async fn read_footers(location: &Location, files: &[ObjectMeta], state: &dyn Session) -> Result<Footers> {
    let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
    let mut schema: Option<(SchemaRef, String)> = None;
    let mut stats = Vec::with_capacity(files.len());
    let mut rows = Vec::with_capacity(files.len());
    for meta in files {
        let name = meta.location.to_string();
        let unreadable = |e: datafusion::error::DataFusionError| ConnectorError::Unreadable {
            file: name.clone(),
            detail: e.strip_backtrace().to_string(),
        };
        let reader =
            DFParquetMetadata::new(location.store.as_ref(), meta).with_file_metadata_cache(Some(Arc::clone(&cache)));
        let md = reader.fetch_metadata().await.map_err(unreadable)?;
        let file_schema = Arc::new(as_table_schema(reader.fetch_schema().await.map_err(unreadable)?, state));
        let table_schema = match &schema {
            None => {
                schema = Some((Arc::clone(&file_schema), name.clone()));
                file_schema
            }
            Some((first, first_name)) => {
                check_same_schema(first, &file_schema).map_err(|detail| ConnectorError::SchemaConflict {
                    first: first_name.clone(),
                    file: name.clone(),
                    detail,
                })?;
                Arc::clone(first)
            }
        };
        stats.push(DFParquetMetadata::statistics_from_parquet_metadata(&md, &table_schema).map_err(unreadable)?);
        rows.push(md.row_groups().iter().map(|rg| rg.num_rows().max(0) as u64).collect());
    }
    let (schema, _) = schema.ok_or_else(|| ConnectorError::NoFiles(location.text.clone()))?;
    let merged = Statistics::try_merge_iter(stats.iter(), &schema)?;
    Ok((schema, merged, rows))
}

/// A file's schema as DataFusion's own Parquet tables present it, under the session's Parquet
/// options: metadata cleared (`skip_metadata`), binary as text (`binary_as_string`), and
/// strings as views (`schema_force_view_types`, on by default: faster grouping and filtering).
fn as_table_schema(schema: Schema, state: &dyn Session) -> Schema {
    use datafusion::datasource::file_format::parquet::{transform_binary_to_string, transform_schema_to_view};
    let options = &state.default_table_options().parquet.global;
    let mut schema = if options.skip_metadata {
        Schema::new(schema.fields().clone())
    } else {
        schema
    };
    if options.binary_as_string {
        schema = transform_binary_to_string(&schema);
    }
    if options.schema_force_view_types {
        schema = transform_schema_to_view(&schema);
    }
    schema
}

/// Why `other` cannot be read as `first` (column names and types, in order).
fn check_same_schema(first: &Schema, other: &Schema) -> std::result::Result<(), String> {
    if first.fields().len() != other.fields().len() {
        return Err(format!(
            "{} columns instead of {}",
            other.fields().len(),
            first.fields().len()
        ));
    }
    for (a, b) in first.fields().iter().zip(other.fields().iter()) {
        if a.name() != b.name() {
            return Err(format!("column '{}' where '{}' was expected", b.name(), a.name()));
        }
        if a.data_type() != b.data_type() {
            return Err(format!(
                "column '{}' is {} instead of {}",
                a.name(),
                b.data_type(),
                a.data_type()
            ));
        }
    }
    Ok(())
}

impl DistributedParquetTable {
    /// The scan's `P × per_rank` file groups (the same on every rank): partition
    /// `r·per_rank + j` is the `j`-th of `per_rank` runs of rank r's row groups, consecutive in
    /// the global order (files in path order, row groups in file order) and of about equal
    /// rows, so the partitions in order hold the table's rows in order. A rank with fewer row
    /// groups than `per_rank` leaves some of its partitions empty.
    fn file_groups(&self, per_rank: usize) -> Vec<FileGroup> {
        let ranks = self.rows_per_rank.len();
        // Per partition, per file: the row groups it scans.
        let mut picks: Vec<Vec<(usize, Vec<usize>)>> = vec![Vec::new(); ranks * per_rank];
        let mut before = vec![0u64; ranks];
        for (f, file) in self.files.iter().enumerate() {
            for (rg, &owner) in file.owners.iter().enumerate() {
                let rows = file.row_group_rows[rg];
                let total = self.rows_per_rank[owner].max(1);
                // The run holding this row group's first row.
                let first = u128::from(before[owner]);
                let run = ((first * per_rank as u128 / u128::from(total)) as usize).min(per_rank - 1);
                before[owner] += rows;
                let files = &mut picks[owner * per_rank + run];
                match files.last_mut() {
                    Some((last, rgs)) if *last == f => rgs.push(rg),
                    _ => files.push((f, vec![rg])),
                }
            }
        }
        picks
            .into_iter()
            .map(|files| {
                files
                    .into_iter()
                    .map(|(f, rgs)| {
                        let file = &self.files[f];
                        let mut plan = ParquetAccessPlan::new_none(file.row_group_rows.len());
                        for rg in rgs {
                            plan.scan(rg);
                        }
                        PartitionedFile::new_from_meta(file.meta.clone()).with_extension(plan)
                    })
                    .collect()
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl TableProvider for DistributedParquetTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Pruning is by statistics and page index; DataFusion keeps the filter above the scan
        // and pushes its predicate into the Parquet source.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        // DataFusion pushes the filters (FilterExec predicates) into the Parquet source itself.
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.default_table_options().parquet)
            .with_enable_page_index(true);
        let ranks = self.rows_per_rank.len();
        let per_rank = (state.config().target_partitions() / ranks).max(1);
        let groups = self.file_groups(per_rank);
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .with_statistics(self.statistics.clone())
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Object store URLs of rank-split scans start with this (`heatsql+file://`, `heatsql+s3://bucket`).
pub const RANK_SPLIT_PREFIX: &str = "heatsql+";

/// The location's store registered again under a [`RANK_SPLIT_PREFIX`]ed URL: the tag by which
/// plan rewrites tell a rank-split scan (partition r read by rank r) from a replicated source.
fn rank_split_url(location: &Location, state: &dyn Session) -> Result<ObjectStoreUrl> {
    let plain = location.store_url();
    let tagged = ObjectStoreUrl::parse(format!("{RANK_SPLIT_PREFIX}{}", plain.as_str()))?;
    state
        .runtime_env()
        .register_object_store(tagged.as_ref(), Arc::clone(&location.store));
    Ok(tagged)
}

/// Whether `plan` is the scan of a [`DistributedParquetTable`] or a
/// [`crate::RankSplitMemTable`]: partition r holds rank r's rows and must be executed on rank r
/// only.
pub fn is_rank_split_scan(plan: &dyn ExecutionPlan) -> bool {
    if plan.downcast_ref::<crate::memory::RankSplitMemoryExec>().is_some() {
        return true;
    }
    plan.downcast_ref::<DataSourceExec>()
        .and_then(|scan| scan.data_source().downcast_ref::<FileScanConfig>())
        .is_some_and(|config| config.object_store_url.as_str().starts_with(RANK_SPLIT_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    fn file(name: &str, rows: &[u64], owners: &[usize]) -> ParquetFile {
        ParquetFile {
            meta: ObjectMeta {
                location: Path::from(name),
                last_modified: Default::default(),
                size: 1,
                e_tag: None,
                version: None,
            },
            row_group_rows: rows.to_vec(),
            owners: owners.to_vec(),
        }
    }

    /// Per partition: (file, row groups) in order.
    fn layout(groups: &[FileGroup]) -> Vec<Vec<(String, Vec<usize>)>> {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|f| {
                        let plan = f.extensions.get::<ParquetAccessPlan>().expect("an access plan");
                        (f.object_meta.location.to_string(), plan.row_group_indexes())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_rank_s_row_groups_split_into_consecutive_runs_in_table_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        // Two ranks: rank 0 reads a's three groups and b's first, rank 1 the rest.
        let files = vec![
            file("a", &[10, 10, 10], &[0, 0, 0]),
            file("b", &[10, 10, 10], &[0, 1, 1]),
        ];
        let table = DistributedParquetTable {
            location: "t".into(),
            store_url: ObjectStoreUrl::parse("heatsql+file://").expect("url"),
            statistics: Statistics::new_unknown(&schema),
            schema,
            files,
            rows_per_rank: vec![40, 20],
        };
        let one = layout(&table.file_groups(1));
        assert_eq!(
            one,
            [
                vec![("a".to_string(), vec![0, 1, 2]), ("b".to_string(), vec![0])],
                vec![("b".to_string(), vec![1, 2])],
            ]
        );
        let two = layout(&table.file_groups(2));
        assert_eq!(
            two,
            [
                vec![("a".to_string(), vec![0, 1])],
                vec![("a".to_string(), vec![2]), ("b".to_string(), vec![0])],
                vec![("b".to_string(), vec![1])],
                vec![("b".to_string(), vec![2])],
            ]
        );
        // More runs than row groups: some partitions stay empty, order is kept.
        let five = layout(&table.file_groups(5));
        assert_eq!(five.len(), 10);
        let flat: Vec<(String, usize)> = five
            .iter()
            .flatten()
            .flat_map(|(f, rgs)| rgs.iter().map(move |&r| (f.clone(), r)))
            .collect();
        let want: Vec<(String, usize)> = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
            .iter()
            .map(|(f, r)| (f.to_string(), *r))
            .collect();
        assert_eq!(flat, want);
        assert!(five[..5].iter().flatten().all(|(f, rgs)| f == "a" || rgs == &[0]));
    }
}
