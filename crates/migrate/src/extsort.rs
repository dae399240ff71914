//! An external merge sort of byte records: records are held until a memory budget is used,
//! then sorted and written to a run file in the scratch directory; reading back merges the
//! runs. So `plan` orders and checks any number of files in bounded memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use crate::MigrateError;

/// Memory a sorter may hold before it writes a run (records and their bookkeeping).
pub const DEFAULT_SORT_BYTES: usize = 32 * 1024 * 1024;
/// Bytes of bookkeeping counted per record besides its own (the `Vec` and the allocator's).
const PER_RECORD: usize = 40;

/// The error of an I/O step on `path`: the machine's (a full disk, a lost scratch file), never
/// the command's, so not a usage error.
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io { path: path.display().to_string(), source }
}

/// A file in the system's temporary directory, removed when dropped (a sort run, a manifest
/// being written).
pub(crate) struct Scratch(pub PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let unique = format!("migrate-{}-{:08x}-{name}", std::process::id(), random_u32());
        Scratch(std::env::temp_dir().join(unique))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Four random bytes (scratch names, run ids), from aws-lc's generator.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failure here would mean no entropy at all.
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_be_bytes(b)
}

/// Records pushed in any order, read back sorted (byte order of the whole record).
pub struct ExtSort {
    name: String,
    budget: usize,
    held: Vec<Vec<u8>>,
    held_bytes: usize,
    runs: Vec<Scratch>,
    pub count: u64,
}

impl ExtSort {
    /// A sorter whose run files are named after `name` (in the system's temporary directory).
    pub fn new(name: &str, budget: usize) -> Self {
        ExtSort {
            name: name.to_owned(),
            budget: budget.max(1),
            held: Vec::new(),
            held_bytes: 0,
            runs: Vec::new(),
            count: 0,
        }
    }

    pub fn push(&mut self, record: Vec<u8>) -> Result<(), MigrateError> {
        self.held_bytes += record.len() + PER_RECORD;
        self.held.push(record);
        self.count += 1;
        if self.held_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), MigrateError> {
        self.held.sort_unstable();
        let run = Scratch::new(&format!("{}-{}.run", self.name, self.runs.len()));
        let path = &run.0;
        let mut out = BufWriter::new(File::create(path).map_err(io(path))?);
        for r in self.held.drain(..) {
            out.write_all(&(r.len() as u32).to_le_bytes()).map_err(io(path))?;
            out.write_all(&r).map_err(io(path))?;
        }
        out.flush().map_err(io(path))?;
        drop(out);
        self.held_bytes = 0;
        self.runs.push(run);
        Ok(())
    }

    /// Every record in order.
    pub fn sorted(mut self) -> Result<Sorted, MigrateError> {
        if self.runs.is_empty() {
            self.held.sort_unstable();
            return Ok(Sorted {
                held: std::mem::take(&mut self.held).into_iter(),
                runs: Vec::new(),
                heap: BinaryHeap::new(),
            });
        }
        if !self.held.is_empty() {
            self.spill()?;
        }
        let mut runs = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::new();
        for (i, file) in std::mem::take(&mut self.runs).into_iter().enumerate() {
            let mut reader = BufReader::with_capacity(64 * 1024, File::open(&file.0).map_err(io(&file.0))?);
            if let Some(first) = next_record(&mut reader, &file.0)? {
                heap.push(Reverse((first, i)));
            }
            runs.push(Run { reader, file });
        }
        Ok(Sorted { held: Vec::new().into_iter(), runs, heap })
    }
}

/// A run being merged; its file goes with it.
struct Run {
    reader: BufReader<File>,
    file: Scratch,
}

fn next_record(reader: &mut BufReader<File>, path: &std::path::Path) -> Result<Option<Vec<u8>>, MigrateError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    }
    let mut record = vec![0u8; u32::from_le_bytes(len) as usize];
    reader.read_exact(&mut record).map_err(io(path))?;
    Ok(Some(record))
}

/// The records of an [`ExtSort`] in order (merging its runs; their files go when it is dropped).
pub struct Sorted {
    held: std::vec::IntoIter<Vec<u8>>,
    runs: Vec<Run>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl Iterator for Sorted {
    type Item = Result<Vec<u8>, MigrateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.runs.is_empty() {
            return self.held.next().map(Ok);
        }
        let Reverse((record, i)) = self.heap.pop()?;
        let run = &mut self.runs[i];
        match next_record(&mut run.reader, &run.file.0) {
            Ok(Some(next)) => self.heap.push(Reverse((next, i))),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_core::migration::SplitMix64;

    #[test]
    fn a_local_file_that_cannot_be_written_is_not_a_usage_error() {
        let path = std::env::temp_dir().join("migrate-no-such-dir").join("run");
        let err = File::create(&path).map_err(io(&path)).expect_err("a file in a missing directory");
        assert!(matches!(err, MigrateError::Io { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 1, "exit 2 would tell the engineer their command was wrong");
        assert!(err.to_string().contains("migrate-no-such-dir"), "{err}");
    }

    #[test]
    fn records_come_back_in_order_from_memory_and_from_many_runs() {
        // One run in memory; about 40 runs; a run per record (200 open runs merged at once).
        for (budget, records) in [(1 << 30, 2_000), (4_000, 2_000), (1, 200)] {
            let mut rng = SplitMix64::new(7);
            let mut sorter = ExtSort::new("test", budget);
            let mut expected = Vec::new();
            for _ in 0..records {
                let len = rng.below(12) as usize;
                let record: Vec<u8> = (0..len).map(|_| rng.below(4) as u8).collect();
                expected.push(record.clone());
                sorter.push(record).unwrap();
            }
            expected.sort();
            let runs = sorter.runs.len();
            assert_eq!(budget == 1 << 30, runs == 0, "budget {budget}: {runs} runs");
            let got: Vec<Vec<u8>> = sorter.sorted().unwrap().map(Result::unwrap).collect();
            assert_eq!(got, expected, "budget {budget}");
        }
    }

    #[test]
    fn run_files_are_removed() {
        let mut sorter = ExtSort::new("cleanup", 1);
        for i in 0..10u8 {
            sorter.push(vec![9 - i]).unwrap();
        }
        let paths: Vec<PathBuf> = sorter.runs.iter().map(|r| r.0.clone()).collect();
        assert!(paths.iter().all(|p| p.exists()));
        let mut sorted = sorter.sorted().unwrap();
        assert_eq!(sorted.next().unwrap().unwrap(), vec![0]);
        drop(sorted);
        assert!(paths.iter().all(|p| !p.exists()));
    }
}
