-- heatsql demo: a small weather dataset, split over the MPI ranks.
--
-- Run it with `bash scripts/demo.sh` (which builds heatsql and runs
--   mpirun -n 2 target/debug/heatsql --echo -f examples/demo.sql
-- from the repository root). Every rank runs every statement; rank 0 prints.
-- The data goes to target/demo/ (scripts/demo.sh empties it first: COPY refuses
-- to overwrite).

-- 1. Generate the data with SQL and write it as Parquet: 48 weather stations in
--    4 regions, and 60 days of hourly readings from each (69,120 rows).
--    COPY writes one part file per rank, atomically.
COPY (
  SELECT value AS station_id,
         'station-' || lpad(CAST(value AS VARCHAR), 2, '0') AS name,
         CASE value % 4 WHEN 0 THEN 'north' WHEN 1 THEN 'east'
                        WHEN 2 THEN 'south' ELSE 'west' END AS region,
         CAST(100 + (value * 137) % 1900 AS DOUBLE) AS elevation_m
  FROM range(48)
) TO 'target/demo/stations/' STORED AS PARQUET;

COPY (
  WITH r AS (
    SELECT value % 48 AS station_id,
           value / 48 AS hour,
           -- a deterministic pseudo-random number in [0, 1) per reading
           abs(sin(value * 12.9898 + 78.233) * 43758.5453) % 1.0 AS u
    FROM range(69120)
  )
  SELECT station_id,
         to_timestamp_seconds(1780272000 + hour * 3600) AS ts,
         12.0 + 4.0 * (station_id % 4) - ((100 + (station_id * 137) % 1900) / 150.0)
           + 6.0 * sin(2 * pi() * ((hour % 24) - 9) / 24.0)
           + 3.0 * sin(2 * pi() * (hour / 24) / 60.0)
           + 4.0 * (u - 0.5) AS temperature_c,
         60.0 + 25.0 * cos(2 * pi() * ((hour % 24) - 4) / 24.0) * (0.6 + 0.4 * u) AS humidity_pct,
         1013.0 - (100 + (station_id * 137) % 1900) / 8.3 + 6.0 * sin(2 * pi() * hour / 190.0) AS pressure_hpa,
         CASE WHEN u > 0.997 THEN NULL ELSE 2.0 + 10.0 * u * u END AS wind_ms
  FROM r
) TO 'target/demo/readings/' STORED AS PARQUET OPTIONS (max_row_group_size 8192);

-- 2. Register the Parquet directories as distributed tables. Each rank reads only
--    its own row groups; \d shows how the rows are spread over the ranks. Ranks
--    share a table by whole row groups: the 48 stations are one row group (one
--    rank generated them above, the other ranks wrote empty parts), so one rank
--    reads them all, and joins send them to every rank.
CREATE EXTERNAL TABLE stations STORED AS PARQUET LOCATION 'target/demo/stations/';
CREATE EXTERNAL TABLE readings STORED AS PARQUET LOCATION 'target/demo/readings/';
\d readings

-- 3. A global aggregate: each rank aggregates its rows, the partial results meet.
SELECT count(*) AS readings, count(wind_ms) AS with_wind, min(ts) AS first, max(ts) AS last,
       round(avg(temperature_c), 3) AS mean_temperature_c
FROM readings;

-- 4. A join and a GROUP BY across ranks: readings meet their station's region.
SELECT s.region, count(*) AS readings,
       round(avg(r.temperature_c), 2) AS mean_c,
       round(min(r.temperature_c), 2) AS min_c,
       round(max(r.temperature_c), 2) AS max_c,
       round(avg(r.wind_ms), 2) AS mean_wind_ms
FROM readings r JOIN stations s ON r.station_id = s.station_id
GROUP BY s.region ORDER BY s.region;

-- 5. How it ran: the physical plan with its MPI exchanges (MpiShuffleExec,
--    MpiGatherExec) where rows from different ranks must meet; one rank runs
--    DataFusion's own plan (its partitions are the rank's threads).
SET datafusion.explain.physical_plan_only = true;
EXPLAIN SELECT s.region, avg(r.temperature_c) AS mean_c
FROM readings r JOIN stations s ON r.station_id = s.station_id
GROUP BY s.region ORDER BY s.region;

-- 6. A window function: the three warmest stations of each region.
SELECT region, name, mean_c, place FROM (
  SELECT s.region, s.name, round(avg(r.temperature_c), 2) AS mean_c,
         rank() OVER (PARTITION BY s.region ORDER BY avg(r.temperature_c) DESC) AS place
  FROM readings r JOIN stations s ON r.station_id = s.station_id
  GROUP BY s.region, s.name
) WHERE place <= 3 ORDER BY region, place;

-- 7. Feature extraction: daily features per station, written as Parquet. Each rank
--    writes the groups it computed to its own part file; nothing is gathered
--    (an ORDER BY would gather the sorted result on rank 0).
COPY (
  SELECT station_id, date_trunc('day', ts) AS day,
         avg(temperature_c) AS mean_c,
         max(temperature_c) - min(temperature_c) AS range_c,
         stddev(humidity_pct) AS humidity_sd,
         avg(pressure_hpa) AS pressure_hpa,
         max(wind_ms) AS gust_ms
  FROM readings
  GROUP BY station_id, date_trunc('day', ts)
) TO 'target/demo/features/' STORED AS PARQUET;

-- 8. The features read back as a distributed table: 48 stations × 60 days.
CREATE EXTERNAL TABLE features STORED AS PARQUET LOCATION 'target/demo/features/';
\d features
SELECT station_id, day, round(mean_c, 2) AS mean_c, round(range_c, 2) AS range_c,
       round(gust_ms, 2) AS gust_ms
FROM features ORDER BY station_id, day LIMIT 5;

-- 9. PCA of the daily features, standardized (they come in different units): how much
--    of the variation each component explains. Each rank works on its own rows; one
--    allreduce of a 5 × 5 matrix combines them. The feature columns are every numeric
--    column not kept.
SELECT component, round(explained_variance_ratio, 4) AS ratio,
       round(cumulative_variance_ratio, 4) AS cumulative
FROM pca(features, k => 3, standardize => true, keep => 'station_id, day', output => 'variance');

-- 10. The model (loadings) as a table, and scores that compose with SQL: each region's
--     mean position on the first two components. pca_project applies the saved model;
--     the scores stay on the rank that read their rows until the GROUP BY.
CREATE TABLE model AS
SELECT * FROM pca(features, k => 2, standardize => true, keep => 'station_id, day', output => 'loadings');
SELECT feature, round(pc1, 3) AS pc1, round(pc2, 3) AS pc2 FROM model ORDER BY feature;
SELECT s.region, round(avg(p.pc1), 3) AS pc1, round(avg(p.pc2), 3) AS pc2
FROM pca_project(features, model => model, keep => 'station_id') p
JOIN stations s ON p.station_id = s.station_id
GROUP BY s.region ORDER BY s.region;
