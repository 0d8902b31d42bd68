//! CSV and Parquet exports of the tidy rows (one per cell × metric) through polars, behind the `polars` feature:
//! bytes, which the caller writes.

use edgebench_core::results::RunResults;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// Every run's tidy rows in `format`: the file's bytes and the number of rows.
pub fn export(runs: &[RunResults], format: Export) -> Result<(Vec<u8>, usize), String> {
    let rows = crate::rows::tidy_rows(runs);
    imp::encode(&rows, format).map(|bytes| (bytes, rows.len()))
}

#[cfg(feature = "polars")]
mod imp {
    use polars::prelude::*;

    use super::Export;
    use crate::rows::TidyRow;

    /// The rows as a polars DataFrame, one column per field.
    pub fn dataframe(rows: &[TidyRow]) -> PolarsResult<DataFrame> {
        let s = |f: fn(&TidyRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let x = |f: fn(&TidyRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
        df!(
            "run_id" => s(|r| &r.run_id),
            "device_cpu" => s(|r| &r.device_cpu),
            "model" => s(|r| &r.model),
            "backend" => s(|r| &r.backend),
            "device" => s(|r| &r.device),
            "threads" => rows.iter().map(|r| r.threads).collect::<Vec<u32>>(),
            "workload" => s(|r| &r.workload),
            "status" => s(|r| &r.status),
            "metric" => s(|r| &r.metric),
            "unit" => s(|r| &r.unit),
            "better" => s(|r| &r.better),
            "n" => rows.iter().map(|r| r.n).collect::<Vec<u32>>(),
            "median" => x(|r| r.median),
            "ci_low" => x(|r| r.ci_low),
            "ci_high" => x(|r| r.ci_high),
            "mean" => x(|r| r.mean),
            "stddev" => x(|r| r.stddev),
            "p90" => x(|r| r.p90),
            "p99" => x(|r| r.p99),
        )
    }

    pub fn encode(rows: &[TidyRow], format: Export) -> Result<Vec<u8>, String> {
        let mut df = dataframe(rows).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        match format {
            Export::Csv => CsvWriter::new(&mut bytes).finish(&mut df).map_err(|e| e.to_string())?,
            Export::Parquet => ParquetWriter::new(&mut bytes).finish(&mut df).map(|_| ()).map_err(|e| e.to_string())?,
        }
        Ok(bytes)
    }
}

#[cfg(not(feature = "polars"))]
mod imp {
    use super::Export;
    use crate::rows::TidyRow;

    pub fn encode(_: &[TidyRow], _: Export) -> Result<Vec<u8>, String> {
        Err("CSV and Parquet export are not compiled in: rebuild with --features polars".into())
    }
}

#[cfg(all(test, feature = "polars"))]
mod tests {
    use super::imp::dataframe;
    use crate::rows::tidy_rows;

    #[test]
    fn csv_and_parquet_round_trip_every_row() {
        use polars::prelude::*;
        let runs = vec![crate::fixtures::run("r1", "AMD EPYC")];
        let rows = tidy_rows(&runs);
        let dir = tempfile::tempdir().unwrap();
        for (fmt, name) in [(super::Export::Csv, "t.csv"), (super::Export::Parquet, "t.parquet")] {
            let p = dir.path().join(name);
            let (bytes, n) = super::export(&runs, fmt).unwrap();
            assert_eq!(n, rows.len());
            std::fs::write(&p, bytes).unwrap();
            let df = match fmt {
                super::Export::Csv => {
                    CsvReadOptions::default().try_into_reader_with_file_path(Some(p)).unwrap().finish()
                }
                super::Export::Parquet => ParquetReader::new(std::fs::File::open(&p).unwrap()).finish(),
            }
            .unwrap();
            assert_eq!(df.height(), rows.len(), "{name}");
            assert_eq!(df.get_column_names().len(), dataframe(&rows).unwrap().width(), "{name}");
        }
    }
}
